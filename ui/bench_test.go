package ui_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// benchRows is the size of the result file BenchmarkRowsPage pages through.
const benchRows = 5_000_000

// BenchmarkRowsPage measures the rows page over the 5M-row unmatched file
// of a real explained job, served by a real scheduler: the first page, a random page, a page
// filtered by reason, and a key search. The target is p95 < 300 ms; each
// sub-benchmark reports its p50 and p95 (ms/op is their mean).
//
//	go test -run '^$' -bench RowsPage -benchtime 200x ./ui/
func BenchmarkRowsPage(b *testing.B) {
	s := startScheduler(b, nil)
	// A real explained job whose 5M invoices all stay unmatched: half have
	// no payment (no_candidate), half a payment 5.00 off (outside_rule,
	// with that payment as the nearest candidate).
	dir := b.TempDir()
	invoices, payments := filepath.Join(dir, "invoices.parquet"), filepath.Join(dir, "payments.parquet")
	start := time.Now()
	db := duck(b)
	for _, q := range []string{
		fmt.Sprintf(`COPY (SELECT 'INV-' || lpad(i::VARCHAR, 9, '0') AS invoice_id, 'R' || i AS ref, 'Customer ' || (i %% 5000) AS customer,
			DATE '2026-01-01' + (i %% 365)::INT AS issued_on, ((i * 7919) %% 10000000 / 100)::DECIMAL(18,2) AS amount,
			['EUR', 'USD', 'GBP'][i %% 3 + 1] AS currency FROM range(%d) t(i)) TO '%s' (FORMAT parquet)`, benchRows, invoices),
		fmt.Sprintf(`COPY (SELECT 'PAY-' || lpad(i::VARCHAR, 9, '0') AS payment_id, 'R' || i AS ref,
			((i * 7919) %% 10000000 / 100 + 5)::DECIMAL(18,2) AS amount FROM range(%d) t(i) WHERE i %% 2 = 1) TO '%s' (FORMAT parquet)`, benchRows, payments),
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	out := filepath.Join(dir, "out")
	runID := s.submit(b, map[string]any{
		"run_id": kalla.NewRunID(), "explain": true, "output_path": out,
		"rules": []any{map[string]any{"name": "by_ref", "match_sql": `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p
			ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50)`}},
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": invoices},
			map[string]any{"alias": "right_src", "uri": payments},
		},
		"primary_keys": map[string]any{"left_src": []any{"invoice_id"}, "right_src": []any{"payment_id"}},
	})
	if res := s.waitState(b, runID, kalla.JobCompleted).Result; res == nil || res.UnmatchedLeftCount != benchRows {
		b.Fatalf("the job left %+v unmatched, want all %d invoices", res, benchRows)
	}
	b.Logf("wrote and reconciled %d rows in %s", benchRows, time.Since(start))
	page := s.url + "/ui/runs/" + runID + "/rows/unmatched_left"
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bc := range []struct {
		name string
		url  func() string
	}{
		{"first", func() string { return page }},
		{"random", func() string { return fmt.Sprintf("%s?page=%d", page, 1+rng.IntN(benchRows/100)) }},
		{"reason", func() string { return page + "?reason=outside_rule&page=" + fmt.Sprint(1+rng.IntN(100)) }},
		{"key", func() string { return page + "?q=" + url.QueryEscape(fmt.Sprintf("INV-%09d", rng.IntN(benchRows))) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &http.Client{}
			var took []time.Duration
			for b.Loop() {
				u := bc.url()
				t0 := time.Now()
				resp, err := c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took = append(took, time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", u, resp.StatusCode)
				}
			}
			slices.Sort(took)
			b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
			b.ReportMetric(ms(took[min(len(took)-1, len(took)*95/100)]), "p95-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
