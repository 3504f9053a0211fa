package duckdb_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// graphSQL builds the candidate pairs of the random graphs from the source
// rows: left row l and right row r of one graph (grp) are a pair when bit
// r.ix of l.mask is set, with a small score (often equal, sometimes NULL);
// bit r.ix of l.dmask adds a second row of the pair with other scores, and
// of l.emask an identical copy of the first.
const graphSQL = graphMaskSQL + `
UNION ALL
SELECT l.lid, r.rk1, r.rk2, (l.tv >> (2 * r.ix)) & 3, (l.sv2 >> (2 * r.ix)) & 3, 2
FROM left_src l JOIN right_src r ON r.grp = l.grp AND (l.dmask >> r.ix) & 1 = 1
UNION ALL
SELECT l.lid, r.rk1, r.rk2,
  CASE WHEN (l.nv >> r.ix) & 1 = 1 THEN NULL ELSE (l.sv >> (2 * r.ix)) & 3 END,
  (l.sv2 >> (2 * r.ix)) & 3, 1
FROM left_src l JOIN right_src r ON r.grp = l.grp AND (l.emask >> r.ix) & 1 = 1`

// graphMaskSQL is the first part of graphSQL: one row per pair, from a
// plain SELECT (which a cluster can partition).
const graphMaskSQL = `SELECT l.lid, r.rk1, r.rk2,
  CASE WHEN (l.nv >> r.ix) & 1 = 1 THEN NULL ELSE (l.sv >> (2 * r.ix)) & 3 END AS score,
  (l.sv2 >> (2 * r.ix)) & 3 AS score2, 1 AS via
FROM left_src l JOIN right_src r ON r.grp = l.grp AND (l.mask >> r.ix) & 1 = 1`

// The result columns of graphSQL, by index.
const (
	gLid = iota
	gRk1
	gRk2
	gScore
	gScore2
	gVia
)

// graphLeft and graphRight are the source rows of the random graphs, in the
// order of their CSV columns.
type graphLeft struct {
	lid                                      val
	grp, mask, dmask, emask, sv, sv2, tv, nv int64
}

type graphRight struct {
	rk1     string
	rk2     val
	grp, ix int64
}

func (l graphLeft) row() []val {
	return []val{l.lid, ival(l.grp), ival(l.mask), ival(l.dmask), ival(l.emask), ival(l.sv), ival(l.sv2), ival(l.tv), ival(l.nv)}
}

func (r graphRight) row() []val { return []val{sval(r.rk1), r.rk2, ival(r.grp), ival(r.ix)} }

// graphs is a batch of random candidate graphs with disjoint keys, so one
// job runs them all: each graph has up to 6 rows a side (some with no
// candidate, a few with a NULL key), pairs of small scores (many equal,
// some NULL), duplicate rows of a pair, and often several components.
type graphs struct {
	left  []graphLeft
	right []graphRight
}

func randomGraphs(rng *rand.Rand, n int) graphs {
	var g graphs
	lids := rng.Perm(n * 10)
	rk2s := rng.Perm(n * 10)
	for grp := range int64(n) {
		nl, nr := rng.IntN(7), rng.IntN(7)
		density := []float64{0.15, 0.35, 0.6, 0.9}[rng.IntN(4)]
		scoreMax := []int64{1, 2, 4}[rng.IntN(3)]
		bits := func(p float64, of int64) int64 {
			var m int64
			for i := range nr {
				if of>>i&1 == 1 && rng.Float64() < p {
					m |= 1 << i
				}
			}
			return m
		}
		scores := func() int64 {
			var s int64
			for i := range nr {
				s |= rng.Int64N(scoreMax) << (2 * i)
			}
			return s
		}
		for range nl {
			l := graphLeft{lid: ival(int64(lids[0])), grp: grp}
			lids = lids[1:]
			if rng.IntN(50) == 0 {
				l.lid = nullVal()
			}
			l.mask = bits(density, -1)
			l.dmask = bits(0.15, l.mask)
			l.emask = bits(0.1, l.mask)
			l.nv = bits(0.1, -1)
			l.sv, l.sv2, l.tv = scores(), scores(), scores()
			g.left = append(g.left, l)
		}
		for ix := range int64(nr) {
			r := graphRight{rk1: []string{"a", "b", "c"}[rng.IntN(3)], rk2: ival(int64(rk2s[0])), grp: grp, ix: ix}
			rk2s = rk2s[1:]
			if rng.IntN(50) == 0 {
				r.rk2 = nullVal()
			}
			g.right = append(g.right, r)
		}
	}
	return g
}

// pairs builds the rows graphSQL returns, as the reference's candidates.
func (g graphs) pairs() [][]val { return g.pairsOf(false) }

// pairsOf builds the rows graphMaskSQL (maskOnly) or graphSQL returns.
func (g graphs) pairsOf(maskOnly bool) [][]val {
	byGrp := map[int64][]graphRight{}
	for _, r := range g.right {
		byGrp[r.grp] = append(byGrp[r.grp], r)
	}
	var out [][]val
	for _, l := range g.left {
		for _, r := range byGrp[l.grp] {
			two := func(v int64) val { return ival(v >> (2 * r.ix) & 3) }
			score := two(l.sv)
			if l.nv>>r.ix&1 == 1 {
				score = nullVal()
			}
			if l.mask>>r.ix&1 == 1 {
				out = append(out, []val{l.lid, sval(r.rk1), r.rk2, score, two(l.sv2), ival(1)})
			}
			if maskOnly {
				continue
			}
			if l.dmask>>r.ix&1 == 1 {
				out = append(out, []val{l.lid, sval(r.rk1), r.rk2, two(l.tv), two(l.sv2), ival(2)})
			}
			if l.emask>>r.ix&1 == 1 {
				out = append(out, []val{l.lid, sval(r.rk1), r.rk2, score, two(l.sv2), ival(1)})
			}
		}
	}
	return out
}

// csv writes the rows of each side as CSV files in b's folder, shuffled
// by shuffle (nil: as generated), and returns their paths.
func (g graphs) csv(t *testing.T, b *bundle, name string, shuffle *rand.Rand) (left, right string) {
	t.Helper()
	lrows := make([]string, len(g.left))
	for i, l := range g.left {
		lrows[i] = csvRow(l.row())
	}
	rrows := make([]string, len(g.right))
	for i, r := range g.right {
		rrows[i] = csvRow(r.row())
	}
	if shuffle != nil {
		shuffle.Shuffle(len(lrows), func(i, j int) { lrows[i], lrows[j] = lrows[j], lrows[i] })
		shuffle.Shuffle(len(rrows), func(i, j int) { rrows[i], rrows[j] = rrows[j], rrows[i] })
	}
	left = b.write(t, name+"_left.csv", "lid,grp,mask,dmask,emask,sv,sv2,tv,nv\n"+strings.Join(lrows, ""))
	right = b.write(t, name+"_right.csv", "rk1,rk2,grp,ix\n"+strings.Join(rrows, ""))
	return left, right
}

// csvRow is a CSV line of vals; NULL is an empty field.
func csvRow(vals []val) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		if !v.null {
			parts[i] = v.text()
		}
	}
	return strings.Join(parts, ",") + "\n"
}

// exclusiveMode is one exclusive setting the random graphs run under, with
// the reference rule that models it.
type exclusiveMode struct {
	name string
	// top puts exclusive on a match_sql job instead of a rule.
	top  bool
	ex   kalla.Exclusive
	rule refRule
}

var graphKeys = [2][]int{{gLid}, {gRk1, gRk2}}

func exclusiveModes() []exclusiveMode {
	both := [2]bool{true, true}
	return []exclusiveMode{
		{name: "both_score", top: true, ex: kalla.Exclusive{OrderBy: []string{"score"}},
			rule: refRule{keys: graphKeys, sides: both, order: []refOrder{{gScore, false}}}},
		{name: "both_desc_then_score2", ex: kalla.Exclusive{Sides: []string{"left_src", "right_src"}, OrderBy: []string{"score DESC", "score2"}},
			rule: refRule{keys: graphKeys, sides: both, order: []refOrder{{gScore, true}, {gScore2, false}}}},
		{name: "both_key_only", ex: kalla.Exclusive{},
			rule: refRule{keys: graphKeys, sides: both}},
		{name: "both_leave_ties", ex: kalla.Exclusive{OrderBy: []string{"score"}, Ties: kalla.TiesLeaveUnmatched},
			rule: refRule{keys: graphKeys, sides: both, order: []refOrder{{gScore, false}}, leaveTies: true}},
		{name: "left_only", ex: kalla.Exclusive{Sides: []string{"left_src"}, OrderBy: []string{"score"}},
			rule: refRule{keys: graphKeys, sides: [2]bool{true, false}, order: []refOrder{{gScore, false}}}},
		{name: "right_only", top: true, ex: kalla.Exclusive{Sides: []string{"RIGHT_SRC"}, OrderBy: []string{"score2 desc", "score"}},
			rule: refRule{keys: graphKeys, sides: [2]bool{false, true}, order: []refOrder{{gScore2, true}, {gScore, false}}}},
		{name: "left_only_leave_ties_key_only", ex: kalla.Exclusive{Sides: []string{"left_src"}, Ties: kalla.TiesLeaveUnmatched},
			rule: refRule{keys: graphKeys, sides: [2]bool{true, false}, leaveTies: true}},
		{name: "right_only_leave_ties", ex: kalla.Exclusive{Sides: []string{"right_src"}, OrderBy: []string{"score"}, Ties: kalla.TiesLeaveUnmatched},
			rule: refRule{keys: graphKeys, sides: [2]bool{false, true}, order: []refOrder{{gScore, false}}, leaveTies: true}},
	}
}

// graphJob is a job over the graphs' CSV files under mode.
func graphJob(b *bundle, mode exclusiveMode, left, right, out string) *kalla.Job {
	job := b.job(graphSQL, left, right, []string{"lid"}, []string{"rk1", "rk2"})
	job.OutputPath = filepath.Join(b.dir, out)
	ex := mode.ex
	if mode.top {
		job.Exclusive = &ex
	} else {
		job.MatchSQL = ""
		job.Rules = []kalla.Rule{{Name: "r_" + mode.name, MatchSQL: graphSQL, Exclusive: &ex}}
	}
	return job
}

// checkGraphJob runs job and compares every output with the reference: the
// kept pairs, both unmatched files and the rule's counts row for row, and
// the invariants on the kept pairs.
func checkGraphJob(t *testing.T, b *bundle, g graphs, mode exclusiveMode, job *kalla.Job) *kalla.Result {
	t.Helper()
	res := b.run(t, job)
	cands := g.pairs()
	want := mode.rule.run(cands)
	if mode.rule.leaveTies && want.ties == 0 {
		t.Fatal("the graphs have no tie: they prove nothing about leave_unmatched")
	}

	got := ducktest.Rows(t, fmt.Sprintf("SELECT lid, rk1, rk2, score, score2, via FROM read_parquet('%s')", res.OutputPaths.Matched))
	kallatest.SameRows(t, "matched", got, sortedText(want.accepted))
	mode.rule.checkInvariants(t, "matched", parseRows(got), want.eligible)

	takenL, takenR := map[string]bool{}, map[string]bool{}
	for _, p := range want.accepted {
		takenL[p[gLid].text()] = true
		takenR[p[gRk1].text()+"|"+p[gRk2].text()] = true
	}
	var wantL, wantR [][]val
	for _, l := range g.left {
		if l.lid.null || !takenL[l.lid.text()] {
			wantL = append(wantL, l.row())
		}
	}
	for _, r := range g.right {
		if r.rk2.null || !takenR[r.rk1+"|"+r.rk2.text()] {
			wantR = append(wantR, r.row())
		}
	}
	kallatest.SameRows(t, "unmatched left", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedLeft)), sortedText(wantL))
	kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedRight)), sortedText(wantR))

	name := "match"
	cols := ducktest.Query(t, fmt.Sprintf("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM read_parquet('%s'))", res.OutputPaths.Matched))
	if labelled := strings.HasPrefix(cols[0], kalla.RuleColumn+","); labelled == mode.top {
		t.Errorf("matched columns %s: a rule's rows carry %s, a match_sql job's do not", cols[0], kalla.RuleColumn)
	}
	if !mode.top {
		name = "r_" + mode.name
		labels := ducktest.Rows(t, fmt.Sprintf("SELECT DISTINCT %s FROM read_parquet('%s')", kalla.RuleColumn, res.OutputPaths.Matched))
		if len(want.accepted) > 0 {
			kallatest.SameRows(t, "rule labels", labels, []string{name})
		}
	}
	wantCount := kalla.RuleCount{Name: name, LeftIn: int64(len(g.left)), RightIn: int64(len(g.right)),
		Candidates: int64(len(cands)), Matched: int64(len(want.accepted)), Ties: want.ties}
	if len(res.Rules) != 1 {
		t.Fatalf("rules in result: %+v, want one", res.Rules)
	}
	gotCount := res.Rules[0]
	gotCount.ElapsedMS = 0
	if gotCount != wantCount {
		t.Errorf("rule counts %+v, want %+v", gotCount, wantCount)
	}
	var summary kalla.Result
	if raw, err := os.ReadFile(filepath.Join(job.OutputPath, kalla.SummaryFile)); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(raw, &summary); err != nil {
		t.Errorf("summary.json: %v", err)
	} else if len(summary.Rules) != 1 || summary.Rules[0] != res.Rules[0] {
		t.Errorf("summary.json rules %+v, result %+v", summary.Rules, res.Rules)
	}
	if res.MatchedCount != int64(len(want.accepted)) || res.UnmatchedLeftCount != int64(len(wantL)) || res.UnmatchedRightCount != int64(len(wantR)) {
		t.Errorf("result counts %d/%d/%d, want %d/%d/%d", res.MatchedCount, res.UnmatchedLeftCount, res.UnmatchedRightCount,
			len(want.accepted), len(wantL), len(wantR))
	}
	return res
}

func sortedText(rows [][]val) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = rowText(r)
	}
	slices.Sort(out)
	return out
}

// parseRows turns "a|b|c" rows back into values (as text; NULL for "NULL"),
// enough for the invariants, which compare values as text.
func parseRows(rows []string) [][]val {
	out := make([][]val, len(rows))
	for i, r := range rows {
		for _, f := range strings.Split(r, "|") {
			v := sval(f)
			if f == "NULL" {
				v = nullVal()
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

// greedyKnobs are the settings of the assignment's two paths: as shipped,
// the walk in Go alone, rounds in SQL alone until nothing is left, and two
// rounds finished by the walk.
func greedyKnobs() []struct {
	name   string
	rounds int
	below  int64
} {
	rounds, below := duckdb.GreedyDefaults()
	return []struct {
		name   string
		rounds int
		below  int64
	}{
		{"default", rounds, below},
		{"walk_only", 0, below},
		{"rounds_only", 1 << 30, 0},
		{"two_rounds_then_walk", 2, 0},
	}
}

// 1,000 random candidate graphs, batched into one job per exclusive mode
// and path of the assignment, each equal to the reference row for row. Not
// parallel: it sets the assignment's knobs for the whole package.
func TestRandomGraphsEqualTheReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 2026))
	g := randomGraphs(rng, 1000)
	b := setup(t, duckdb.Config{})
	// Parquet: a CSV source is sniffed anew by every job.
	left, right := g.csv(t, b, "graphs", nil)
	left, right = toParquet(t, left), toParquet(t, right)
	if n := len(g.pairs()); n < 3000 {
		t.Fatalf("only %d candidate pairs: the graphs are too sparse to prove anything", n)
	}
	for ki, knob := range greedyKnobs() {
		t.Run(knob.name, func(t *testing.T) {
			t.Cleanup(duckdb.SetGreedy(knob.rounds, knob.below))
			for _, mode := range exclusiveModes() {
				oneSide := mode.rule.sides[0] != mode.rule.sides[1]
				if oneSide && ki > 0 {
					continue // one side never walks: the knobs do not apply
				}
				t.Run(mode.name, func(t *testing.T) {
					t.Parallel()
					checkGraphJob(t, b, g, mode, graphJob(b, mode, left, right, knob.name+"_"+mode.name))
				})
			}
		})
	}
}
