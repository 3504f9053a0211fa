package duckdb_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A waterfall of exclusive and plain rules over the random graphs equals
// the reference waterfall: each rule's candidates are its pairs whose rows
// no earlier rule took (a row with a NULL key is never taken), assigned by
// the reference; rows taken by rule 1 are invisible to rules 2 and 3,
// which would match many of them.
func TestRandomWaterfallEqualsReference(t *testing.T) {
	t.Parallel()
	g := randomGraphs(rand.New(rand.NewPCG(21, 4)), 1000)
	b := setup(t, duckdb.Config{})
	left, right := g.csv(t, b, "graphs", nil)
	rules := []struct {
		rule     kalla.Rule
		maskOnly bool
		ref      *refRule
	}{
		{kalla.Rule{Name: "first", MatchSQL: graphMaskSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"score"}, Ties: kalla.TiesLeaveUnmatched}},
			true, &refRule{keys: graphKeys, sides: [2]bool{true, true}, order: []refOrder{{gScore, false}}, leaveTies: true}},
		{kalla.Rule{Name: "second", MatchSQL: graphSQL, Exclusive: &kalla.Exclusive{Sides: []string{"left_src"}, OrderBy: []string{"score2 DESC"}}},
			false, &refRule{keys: graphKeys, sides: [2]bool{true, false}, order: []refOrder{{gScore2, true}}}},
		{kalla.Rule{Name: "third", MatchSQL: graphSQL}, false, nil},
	}
	job := b.job("", left, right, []string{"lid"}, []string{"rk1", "rk2"})
	for _, r := range rules {
		job.Rules = append(job.Rules, r.rule)
	}
	res := b.run(t, job)

	takenL, takenR := map[string]bool{}, map[string]bool{}
	rk := func(p []val) string { return p[gRk1].text() + "|" + p[gRk2].text() }
	free := func(p []val) bool {
		return (p[gLid].null || !takenL[p[gLid].text()]) && (p[gRk2].null || !takenR[rk(p)])
	}
	hidden := 0
	for k, r := range rules {
		var cands [][]val
		for _, p := range g.pairsOf(r.maskOnly) {
			if free(p) {
				cands = append(cands, p)
			} else {
				hidden++
			}
		}
		want := kalla.RuleCount{Name: r.rule.Name, Candidates: int64(len(cands))}
		for _, l := range g.left {
			if l.lid.null || !takenL[l.lid.text()] {
				want.LeftIn++
			}
		}
		for _, x := range g.right {
			if x.rk2.null || !takenR[x.rk1+"|"+x.rk2.text()] {
				want.RightIn++
			}
		}
		kept := cands
		if r.ref != nil {
			o := r.ref.run(cands)
			kept, want.Ties = o.accepted, o.ties
		}
		want.Matched = int64(len(kept))
		for _, p := range kept {
			if !p[gLid].null {
				takenL[p[gLid].text()] = true
			}
			if !p[gRk2].null {
				takenR[rk(p)] = true
			}
		}
		got := ducktest.Rows(t, fmt.Sprintf("SELECT lid, rk1, rk2, score, score2, via FROM read_parquet('%s') WHERE %s = '%s'",
			res.OutputPaths.Matched, kalla.RuleColumn, r.rule.Name))
		kallatest.SameRows(t, "rule "+r.rule.Name, got, sortedText(kept))
		gotCount := res.Rules[k]
		gotCount.ElapsedMS = 0
		if gotCount != want {
			t.Errorf("rule %s: counts %+v, want %+v", r.rule.Name, gotCount, want)
		}
		if want.Matched == 0 {
			t.Errorf("rule %s matched nothing: the graphs do not exercise it", r.rule.Name)
		}
	}
	if hidden == 0 {
		t.Error("no later rule had a candidate among the rows earlier rules took: the waterfall is not exercised")
	}
	var wantL, wantR [][]val
	for _, l := range g.left {
		if l.lid.null || !takenL[l.lid.text()] {
			wantL = append(wantL, l.row())
		}
	}
	for _, x := range g.right {
		if x.rk2.null || !takenR[x.rk1+"|"+x.rk2.text()] {
			wantR = append(wantR, x.row())
		}
	}
	kallatest.SameRows(t, "unmatched left", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedLeft)), sortedText(wantL))
	kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedRight)), sortedText(wantR))
}
