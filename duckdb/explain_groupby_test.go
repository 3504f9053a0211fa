package duckdb_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
)

// TestExplainGroupByRunsAsWritten: GROUP BY ALL without an aggregate makes
// one row of I1's two rows' pairs with P1. Kept as pairs, the added
// columns (each pair's tolerance gap) split the group: two matched rows
// where the rule gives one, which also hid I1's duplicate key from the
// primary-key check. A rule with GROUP BY runs as written, and the job
// fails on the duplicate key whether it is explained or not.
func TestExplainGroupByRunsAsWritten(t *testing.T) {
	const invoices = "id,ref,amount\nI1,R1,100.00\nI1,R1,100.10\nI2,R2,50.00\n"
	const payments = "pid,ref,amount\nP1,R1,100.20\nP2,R2,60.00\n"
	for _, explain := range []bool{true, false} {
		log := &stepLog{}
		b := setup(t, duckdb.Config{Logger: slog.New(log)})
		job := b.job("", b.write(t, "invoices.csv", invoices), b.write(t, "payments.csv", payments), []string{"id"}, []string{"pid"})
		job.Explain = explain
		job.Rules = []kalla.Rule{{Name: "r", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50) GROUP BY ALL"}}
		_, err := b.runner.Run(t.Context(), job, nil)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "primary_keys.left_src" {
			t.Errorf("explain %v: got %v, want the duplicate key I1 refused", explain, err)
		}
		if slices.Contains(log.steps, "candidates") {
			t.Errorf("explain %v: steps %v, want the rule run as written", explain, log.steps)
		}
	}
}
