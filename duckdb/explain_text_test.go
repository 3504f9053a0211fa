package duckdb_test

import (
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Conditions written with BETWEEN, and with LIKE and OR in parentheses in
// the WHERE clause, are named in _kalla_near_failed as written, not as
// DuckDB renders them.
func TestExplainConditionsAsWritten(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", explainInvoices)
	right := b.write(t, "payments.csv", "pid,ref,amount,memo\nP1,R1,100.50,INV R1\nP2,R2,200.51,INV R2\nP3,R3,50.00,misc\nP4,R4,80.00,misc\n")
	job := b.job("", left, right, []string{"id"}, []string{"pid"})
	job.Explain = true
	between := "p.amount BETWEEN i.amount - 0.50 AND i.amount + 0.50"
	like := "(p.memo LIKE 'INV%' OR p.memo IS NULL)"
	job.Rules = []kalla.Rule{{Name: "memo", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND " + between + "\nWHERE " + like}}
	res := b.run(t, job)
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{"memo|I1|P1"})
	// The condition's text may lose the parentheses that only group it,
	// but it is the user's spelling: LIKE, not DuckDB's ~~.
	likeText := strings.Trim(like, "()")
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, _kalla_reason, _kalla_near_key, _kalla_near_failed[1], _kalla_near_failed[2]"), []string{
		"I2|outside_rule|P2|" + between + "|NULL",
		"I3|outside_rule|P3|" + likeText + "|NULL",
		"I4|outside_rule|P4|" + between + "|" + likeText,
		"I5|null_key|NULL|NULL|NULL",
		"I6|no_candidate|NULL|NULL|NULL",
	})
}
