package duckdb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// suggestJob matches exact amounts, suggests pairs within 0.50 by
// reference, and would match any pair by reference after that.
func suggestJob(b *bundle, left, right string) *kalla.Job {
	job := b.job("", left, right, []string{"id"}, []string{"pid"})
	job.Rules = []kalla.Rule{
		{Name: "exact", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"},
		{Name: "near", Status: kalla.StatusSuggested, MatchSQL: explainSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"amount_diff"}}},
		{Name: "any", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref"},
	}
	return job
}

func TestSuggestedRulePairsStayUnmatched(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	res := b.run(t, suggestJob(b, b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments)))
	if res.SuggestedCount != 2 || res.OutputPaths.Suggested == "" {
		t.Fatalf("suggested %d at %q, want 2 pairs in suggested.parquet", res.SuggestedCount, res.OutputPaths.Suggested)
	}
	// I4 went to "exact", so P5 has no invoice left to be suggested for.
	kallatest.SameRows(t, "suggested", parquet(t, res.OutputPaths.Suggested, "*"), []string{
		"near|I1|P1|0.50", "near|I6|P6|0.10",
	})
	// "any" sees neither the exact pair nor the suggested rows: it only
	// pairs I2 and P2, one cent outside "near" (P7's I6 is suggested).
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{
		"any|I2|P2", "exact|I4|P4",
	})
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, _kalla_reason"), []string{
		"I1|suggested", "I3|NULL", "I5|NULL", "I6|suggested",
	})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "pid, _kalla_reason"), []string{
		"P1|suggested", "P3|NULL", "P5|NULL", "P6|suggested", "P7|NULL",
	})
}

// TestConfirmedPairsMatchFirst feeds a person's pick back: confirmed pairs
// match before every rule, and a pair whose row is gone is dropped.
func TestConfirmedPairsMatchFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left, right := b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments)
	job := suggestJob(b, left, right)
	job.Confirmed = b.write(t, "confirmed.csv", "_kalla_rule,id,pid,amount_diff\nnear,I4,P5,0.20\nnear,I9,P1,0.00\n")
	res := b.run(t, job)
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "_kalla_rule, id, pid"), []string{
		"any|I2|P2", "confirmed|I4|P5",
	})
	if c := res.Rules[0]; c.Name != kalla.ConfirmedRule || c.Candidates != 2 || c.Matched != 1 {
		t.Errorf("confirmed counts %+v, want 2 candidates and 1 match", c)
	}
	// P4 lost its exact match to the confirmed P5.
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "pid, _kalla_reason"), []string{
		"P1|suggested", "P3|NULL", "P4|NULL", "P6|suggested", "P7|NULL",
	})

	job.Confirmed = filepath.Join(b.dir, "missing.csv")
	if _, err := b.runner.Run(t.Context(), job, nil); !kalla.IsValidation(err) {
		t.Errorf("a missing confirmed file: %v, want a validation error", err)
	}
	os.WriteFile(job.Confirmed, []byte("id,payment\nI1,P1\n"), 0o644)
	if _, err := b.runner.Run(t.Context(), job, nil); !kalla.IsValidation(err) {
		t.Errorf("a confirmed file without the right key: %v, want a validation error", err)
	}
}
