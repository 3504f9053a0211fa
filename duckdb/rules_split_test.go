package duckdb_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
)

// A waterfall of exclusive rules that all join on the graph (grp) is
// partitioned on it, and 1, 2 or 8 partitions, staged or read in place,
// give exactly the local files and counts: every candidate of a row is in
// its partition, so per-partition assignment is the global one.
func TestRulesPartitionedEqualLocal(t *testing.T) {
	t.Parallel()
	g := randomGraphs(rand.New(rand.NewPCG(8, 1)), 400)
	b := setup(t, duckdb.Config{Threads: 2})
	left, right := g.csv(t, b, "graphs", nil)
	left, right = toParquet(t, left), toParquet(t, right)
	local := b.job("", left, right, []string{"lid"}, []string{"rk1", "rk2"})
	local.Rules = []kalla.Rule{
		{Name: "ties_left", MatchSQL: graphMaskSQL, Exclusive: &kalla.Exclusive{Sides: []string{"left_src"}, OrderBy: []string{"score2 DESC"}, Ties: kalla.TiesLeaveUnmatched}},
		{Name: "best", MatchSQL: graphMaskSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"score"}}},
		{Name: "rest", MatchSQL: graphMaskSQL + " AND l.lid % 2 = 0"},
	}
	local.OutputPath = filepath.Join(b.dir, "local")
	want := b.run(t, local)
	if want.Rules[0].Matched == 0 || want.Rules[0].Ties == 0 || want.Rules[1].Matched == 0 || want.Rules[2].Matched == 0 {
		t.Fatalf("the rules do not all act on the graphs: %+v", want.Rules)
	}
	for _, parts := range []int{1, 2, 8} {
		for _, direct := range [][2]bool{{false, false}, {true, true}} {
			t.Run(fmt.Sprintf("parts=%d/direct=%v", parts, direct[0]), func(t *testing.T) {
				split := *local
				split.OutputPath = filepath.Join(b.dir, fmt.Sprintf("split_%d_%v", parts, direct[0]))
				plan, got := runSplit(t, b.runner, &split, parts, direct)
				if plan.Mode != distributed.SplitPartition {
					t.Fatalf("mode %s (%s), want %s", plan.Mode, plan.Reason, distributed.SplitPartition)
				}
				sameResults(t, want, got)
			})
		}
	}
}

// Exclusive rules that share no equality key run whole on one executor,
// and the plan says why.
func TestRulesWithoutSharedKeyRunSingle(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left, right := randomGraphs(rand.New(rand.NewPCG(9, 1)), 50).csv(t, b, "graphs", nil)
	job := b.job("", toParquet(t, left), toParquet(t, right), []string{"lid"}, []string{"rk1", "rk2"})
	job.Rules = []kalla.Rule{
		{Name: "by_graph", MatchSQL: graphMaskSQL, Exclusive: &kalla.Exclusive{}},
		{Name: "by_index", MatchSQL: "SELECT l.lid, r.rk1, r.rk2 FROM left_src l JOIN right_src r ON r.ix = l.mask", Exclusive: &kalla.Exclusive{}},
	}
	job.RunID = kalla.NewRunID()
	plan, _ := runSplit(t, b.runner, job, 2, [2]bool{true, true})
	if plan.Mode != distributed.SplitSingle || plan.Reason == "" {
		t.Errorf("mode %s (reason %q), want %s with a reason", plan.Mode, plan.Reason, distributed.SplitSingle)
	}
	t.Logf("reason: %s", plan.Reason)
}
