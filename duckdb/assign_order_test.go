package duckdb_test

import (
	"cmp"
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
)

// assignPair is one candidate row: left and right keys and a score that
// may be NULL (nil).
type assignPair struct {
	l, r  int
	score *int
}

func (p assignPair) text() string {
	s := "NULL"
	if p.score != nil {
		s = fmt.Sprint(*p.score)
	}
	return fmt.Sprintf("%d|%d|%s", p.l, p.r, s)
}

// rankLess is the documented ranking: score ascending, NULLs last, then
// the left key, then the right key.
func rankLess(a, b assignPair) int {
	switch {
	case a.score == nil && b.score != nil:
		return 1
	case a.score != nil && b.score == nil:
		return -1
	case a.score != nil && *a.score != *b.score:
		return cmp.Compare(*a.score, *b.score)
	}
	return cmp.Or(cmp.Compare(a.l, b.l), cmp.Compare(a.r, b.r))
}

// Random candidate graphs with duplicate scores and NULL scores: a both-sides exclusive rule keeps exactly the pairs of a
// sort-and-scan greedy walk in Go, whether the SQL rounds finish alone or
// hand over to the walk, and a one-side exclusive rule keeps each right
// row's best pair. Not parallel: it sets the package's greedy limits.
func TestRuleAssignmentMatchesSortAndScan(t *testing.T) {
	b := setup(t, duckdb.Config{Threads: 2})
	rng := rand.New(rand.NewPCG(13, 13))
	// Each left row lists its right rows (rs, "r3 r7") and their scores
	// (ss, "s2 sn", n for NULL; letters keep DuckDB's CSV sniffer from
	// reading "0 8 7" as a date); the sandbox allows no table function, so
	// lists, not unnest.
	const sqlText = `SELECT l.lid, r.rid,
  TRY_CAST(nullif(substr(string_split(l.ss, ' ')[list_position(string_split(l.rs, ' '), 'r' || r.rid)], 2), 'n') AS INTEGER) AS score
FROM left_src l JOIN right_src r ON list_contains(string_split(l.rs, ' '), 'r' || r.rid)`
	for g := range 120 {
		nl, nr := 1+rng.IntN(12), 1+rng.IntN(12)
		var pairs []assignPair
		var left strings.Builder
		left.WriteString("lid,rs,ss\n")
		for l := range nl {
			var rs, ss []string
			for _, r := range rng.Perm(nr)[:rng.IntN(min(nr, 5)+1)] {
				p := assignPair{l: l, r: r}
				sc := "n"
				if rng.IntN(6) > 0 {
					s := rng.IntN(3)
					p.score = &s
					sc = fmt.Sprint(s)
				}
				pairs = append(pairs, p)
				rs, ss = append(rs, fmt.Sprintf("r%d", r)), append(ss, "s"+sc)
			}
			if len(rs) == 0 {
				rs, ss = []string{"r999"}, []string{"s0"} // joins no right row
			}
			fmt.Fprintf(&left, "%d,%s,%s\n", l, strings.Join(rs, " "), strings.Join(ss, " "))
		}
		var right strings.Builder
		right.WriteString("rid\n")
		for r := range nr {
			fmt.Fprintf(&right, "%d\n", r)
		}
		dir := filepath.Join(b.dir, fmt.Sprint(g))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lp, rp := filepath.Join(dir, "left.csv"), filepath.Join(dir, "right.csv")
		os.WriteFile(lp, []byte(left.String()), 0o644)
		os.WriteFile(rp, []byte(right.String()), 0o644)
		slices.SortStableFunc(pairs, rankLess)

		// The reference walk, and each right row's best pair.
		var greedy, best []string
		usedL, usedR, seenR := map[int]bool{}, map[int]bool{}, map[int]bool{}
		for _, p := range pairs {
			if !usedL[p.l] && !usedR[p.r] {
				usedL[p.l], usedR[p.r] = true, true
				greedy = append(greedy, p.text())
			}
			if !seenR[p.r] {
				seenR[p.r] = true
				best = append(best, p.text())
			}
		}
		slices.Sort(greedy)
		slices.Sort(best)

		for mode, want := range map[string][]string{"both": greedy, "right": best} {
			x := &kalla.Exclusive{OrderBy: []string{"score"}}
			if mode == "right" {
				x.Sides = []string{"right_src"}
			}
			job := b.job("", lp, rp, []string{"lid"}, []string{"rid"})
			job.Rules = []kalla.Rule{{Name: "r", MatchSQL: sqlText, Exclusive: x}}
			job.OutputPath = filepath.Join(dir, mode)
			// Rounds alone on even graphs; one round, then the walk, on odd.
			restore := duckdb.SetGreedyLimitsForTest(1000, 0)
			if g%2 == 1 {
				duckdb.SetGreedyLimitsForTest(1, 0)
			}
			b.run(t, job)
			restore()
			got := parquet(t, filepath.Join(job.OutputPath, kalla.MatchedFile), "lid, rid, score")
			kallatest.SameRows(t, fmt.Sprintf("graph %d, %s exclusive, left.csv %q, right.csv %q", g, mode, left.String(), right.String()), got, want)
		}
	}
}
