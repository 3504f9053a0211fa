package duckdb_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// After a waterfall of exclusive rules, the session holds no scratch table
// of the assignment (ties, ranks, rounds): each would be as large as the
// rule's candidates. Only each rule's kept pairs stay (the taken keys are
// views over them).
func TestExclusiveRulesLeaveNoScratchTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, duckdb.Config{})
	left, right := randomGraphs(rand.New(rand.NewPCG(31, 1)), 100).csv(t, b, "graphs", nil)
	job := b.job("", left, right, []string{"lid"}, []string{"rk1", "rk2"})
	job.Rules = []kalla.Rule{
		{Name: "both_ties", MatchSQL: graphSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"score"}, Ties: kalla.TiesLeaveUnmatched}},
		{Name: "left_ties", MatchSQL: graphSQL, Exclusive: &kalla.Exclusive{Sides: []string{"left_src"}, Ties: kalla.TiesLeaveUnmatched}},
		{Name: "both", MatchSQL: graphSQL, Exclusive: &kalla.Exclusive{}},
	}
	srcs, _, err := b.runner.Prepare(ctx, job, false)
	if err != nil {
		t.Fatal(err)
	}
	defer kalla.CloseSources(srcs[:])
	sess, err := b.runner.NewSession(ctx, srcs[:])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	spec, err := b.runner.Bind(ctx, sess, job, srcs, kalla.Whole)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range job.Sources {
		if _, err := sess.Load(ctx, s.Alias, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := sess.Reconcile(ctx, spec, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules[0].Ties == 0 || c.Rules[1].Ties == 0 {
		t.Fatalf("no ties: %+v", c.Rules)
	}
	var tables string
	if err := sess.(*duckdb.Session).QueryRow(ctx, `SELECT coalesce(string_agg(table_name, ',' ORDER BY table_name), '')
FROM duckdb_tables() WHERE table_name LIKE '\_kalla\_%' ESCAPE '\'`, &tables); err != nil {
		t.Fatal(err)
	}
	kallatest.SameRows(t, "tables", []string{tables}, []string{"_kalla_accepted_0,_kalla_accepted_1,_kalla_accepted_2"})
}
