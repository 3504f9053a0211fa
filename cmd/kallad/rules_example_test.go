package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The worked example of docs/rules.md: `kallad run examples/rules/job.json`
// from the repository root writes the rows the page shows, and without
// exclusive the payment that fits two invoices is matched twice.
func TestRulesExample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(examplesDir(t), "rules")
	if err := os.MkdirAll(filepath.Join(dir, "examples", "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"job.json", "invoices.csv", "payments.csv"} {
		raw, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "examples", "rules", f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code := kallad(t, dir, "run", "examples/rules/job.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res kalla.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout is not the completion payload: %v\n%s", err, stdout)
	}
	out := filepath.Join(dir, "out", "rules")
	read := func(name string) []string {
		return ducktest.Rows(t, "SELECT * FROM read_parquet('"+filepath.Join(out, name)+"')")
	}
	kallatest.SameRows(t, "matched.parquet", read(kalla.MatchedFile), []string{
		"amount_date|I-1|P-1|0.00|2",
		"amount_date|I-4|P-3|0.20|5",
		"exact_ref|I-3|P-2|NULL|NULL",
		"split_payments|I-5|P-4|NULL|3",
		"split_payments|I-5|P-5|NULL|4",
	})
	kallatest.SameRows(t, "unmatched_left.parquet", read(kalla.UnmatchedLeftFile), []string{
		"I-2|REF-101|ACME|2026-10-06|500.00",
		"I-6|REF-105|INITECH|2026-11-01|300.00",
	})
	kallatest.SameRows(t, "unmatched_right.parquet", read(kalla.UnmatchedRightFile), []string{
		"P-6|NULL|HOOLI|2026-10-12|42.00",
	})
	var got []string
	for _, r := range res.Rules {
		r.ElapsedMS = 0
		b, _ := json.Marshal(r)
		got = append(got, string(b))
	}
	kallatest.SameRows(t, "rules", got, []string{
		`{"name":"exact_ref","left_in":6,"right_in":6,"candidates":1,"matched":1,"ties":0,"elapsed_ms":0}`,
		`{"name":"amount_date","left_in":5,"right_in":5,"candidates":3,"matched":2,"ties":0,"elapsed_ms":0}`,
		`{"name":"split_payments","left_in":3,"right_in":3,"candidates":4,"matched":2,"ties":0,"elapsed_ms":0}`,
	})
	summary, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil || !strings.Contains(string(summary), `"name": "split_payments"`) {
		t.Errorf("summary.json lacks the rules: %v\n%s", err, summary)
	}

	// Without exclusive, amount_date keeps both pairs of P-1.
	var job map[string]any
	raw, err := os.ReadFile(filepath.Join(src, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	delete(job["rules"].([]any)[1].(map[string]any), "exclusive")
	job["output_path"] = "out/plain"
	raw, _ = json.Marshal(job)
	if err := os.WriteFile(filepath.Join(dir, "plain.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := kallad(t, dir, "run", "plain.json"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pairs := ducktest.Rows(t, "SELECT invoice_id, payment_id FROM read_parquet('"+filepath.Join(dir, "out", "plain", kalla.MatchedFile)+"') WHERE _kalla_rule = 'amount_date'")
	if !slices.Equal(pairs, []string{"I-1|P-1", "I-2|P-1", "I-4|P-3"}) {
		t.Errorf("amount_date without exclusive: %q, want P-1 with both I-1 and I-2", pairs)
	}
}
