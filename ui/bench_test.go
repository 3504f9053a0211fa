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

// BenchmarkRowsPage measures the rows page over a 5M-row unmatched file
// served by a real scheduler: the first page, a random page, a page
// filtered by reason, and a key search. The target is p95 < 300 ms; each
// sub-benchmark reports its p50 and p95 (ms/op is their mean).
//
//	go test -run '^$' -bench RowsPage -benchtime 200x ./ui/
func BenchmarkRowsPage(b *testing.B) {
	s := startScheduler(b, nil)
	out := filepath.Join(b.TempDir(), "out")
	runID := s.submit(b, exampleJob(b, out))
	s.waitState(b, runID, kalla.JobCompleted)
	// The job's unmatched file replaced by 5M rows shaped like it, with a
	// reason and the nearest candidate (issue 14's columns).
	start := time.Now()
	rewrite(b, duck(b), filepath.Join(out, kalla.UnmatchedLeftFile), fmt.Sprintf(`SELECT
		'INV-' || lpad(i::VARCHAR, 9, '0') AS invoice_id, 'Customer ' || (i %% 5000) AS customer,
		DATE '2026-01-01' + (i %% 365)::INT AS issued_on, ((i * 7919) %% 10000000 / 100)::DECIMAL(18,2) AS amount,
		['EUR', 'USD', 'GBP'][i %% 3 + 1] AS currency,
		['no_candidate', 'amount_mismatch', 'date_out_of_window', 'duplicate_key'][i %% 4 + 1] AS _kalla_reason,
		CASE WHEN i %% 4 = 1 THEN 'PAY-' || lpad(i::VARCHAR, 9, '0') END AS _kalla_near_payment_id,
		CASE WHEN i %% 4 = 1 THEN ((i * 7919) %% 10000000 / 100 + 0.5)::DECIMAL(18,2) END AS _kalla_near_amount
		FROM range(%d) t(i)`, benchRows))
	b.Logf("wrote %d rows in %s", benchRows, time.Since(start))
	page := s.url + "/ui/runs/" + runID + "/rows/unmatched_left"
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bc := range []struct {
		name string
		url  func() string
	}{
		{"first", func() string { return page }},
		{"random", func() string { return fmt.Sprintf("%s?page=%d", page, 1+rng.IntN(benchRows/100)) }},
		{"reason", func() string { return page + "?reason=amount_mismatch&page=" + fmt.Sprint(1+rng.IntN(100)) }},
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
