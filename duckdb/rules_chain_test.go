package duckdb_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// chainSQL pairs left row i with right rows i and i+1, scored along the
// chain R0 - L0 - R1 - L1 - R2 ...: a pair is locally dominant (best for
// both its rows) only at the head of what is left, so each round of the
// assignment accepts one pair and the rounds alone would need n of them.
const chainSQL = `SELECT l.lid, r.rid, 2 * l.lid AS score FROM left_src l JOIN right_src r ON r.rid = l.lid
UNION ALL
SELECT l.lid, r.rid, 2 * l.lid + 1 FROM left_src l JOIN right_src r ON r.rid = l.lid + 1`

// runChain runs an exclusive chainSQL job over n left and n+1 right rows
// and compares the kept pairs and the unmatched rows with the reference.
func runChain(t *testing.T, n int) {
	b := setup(t, duckdb.Config{})
	var left, right strings.Builder
	left.WriteString("lid\n")
	right.WriteString("rid\n")
	var pairs [][]val
	for i := range int64(n) {
		fmt.Fprintf(&left, "%d\n", i)
		pairs = append(pairs, []val{ival(i), ival(i), ival(2 * i)}, []val{ival(i), ival(i + 1), ival(2*i + 1)})
	}
	for i := range n + 1 {
		fmt.Fprintf(&right, "%d\n", i)
	}
	job := b.job(chainSQL, b.write(t, "l.csv", left.String()), b.write(t, "r.csv", right.String()), []string{"lid"}, []string{"rid"})
	job.Exclusive = &kalla.Exclusive{OrderBy: []string{"score"}}
	res := b.run(t, job)

	rule := refRule{keys: [2][]int{{0}, {1}}, sides: [2]bool{true, true}, order: []refOrder{{col: 2}}}
	want := rule.run(pairs)
	got := ducktest.Rows(t, fmt.Sprintf("SELECT lid, rid, score FROM read_parquet('%s')", res.OutputPaths.Matched))
	kallatest.SameRows(t, "matched", got, sortedText(want.accepted))
	rule.checkInvariants(t, "matched", parseRows(got), want.eligible)
	takenR := map[int64]bool{}
	for _, p := range want.accepted {
		takenR[p[1].i] = true
	}
	var wantR []string
	for i := range int64(n + 1) {
		if !takenR[i] {
			wantR = append(wantR, strconv.FormatInt(i, 10))
		}
	}
	kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, fmt.Sprintf("SELECT rid FROM read_parquet('%s')", res.OutputPaths.UnmatchedRight)), wantR)
	if res.UnmatchedLeftCount != int64(n-len(want.accepted)) {
		t.Errorf("unmatched left %d, want %d", res.UnmatchedLeftCount, n-len(want.accepted))
	}
}

// A chain of 100k rows, where each round of the assignment accepts one
// pair, finishes through the walk (after the rounds the knobs allow) and
// equals the reference. Not parallel: it reads the knobs as shipped.
func TestWorstCaseChainFinishes(t *testing.T) {
	rounds, below := duckdb.GreedyDefaults()
	if rounds <= 0 || below > 200_000 {
		t.Fatalf("knobs %d rounds, walk below %d: the chain would not exercise the fallback", rounds, below)
	}
	runChain(t, 100_000)
}

// On a short chain the rounds alone (no walk) reach the same pairs, one
// round per pair. Not parallel: it sets the knobs.
func TestShortChainByRoundsAlone(t *testing.T) {
	t.Cleanup(duckdb.SetGreedy(1<<30, 0))
	runChain(t, 100)
}

// Shuffled sources (CSV rows in another order, or the same rows as
// Parquet) give the same files and counts.
func TestShuffledInputsGiveIdenticalFiles(t *testing.T) {
	t.Parallel()
	g := randomGraphs(rand.New(rand.NewPCG(7, 13)), 300)
	b := setup(t, duckdb.Config{})
	for _, mode := range exclusiveModes() {
		t.Run(mode.name, func(t *testing.T) {
			var first *kalla.Result
			for i, seed := range []uint64{0, 1, 2} {
				var shuffle *rand.Rand
				if seed > 0 {
					shuffle = rand.New(rand.NewPCG(seed, 99))
				}
				left, right := g.csv(t, b, fmt.Sprintf("%s_%d", mode.name, i), shuffle)
				if i == 2 {
					left, right = toParquet(t, left), toParquet(t, right)
				}
				res := checkGraphJob(t, b, g, mode, graphJob(b, mode, left, right, fmt.Sprintf("%s_out%d", mode.name, i)))
				if first == nil {
					first = res
					continue
				}
				got, want := kallatest.Timeless(*res), kallatest.Timeless(*first)
				got.RunID, want.RunID = "", ""
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("run %d: result %+v, first run %+v", i, got, want)
				}
				for _, f := range [][2]string{
					{res.OutputPaths.Matched, first.OutputPaths.Matched},
					{res.OutputPaths.UnmatchedLeft, first.OutputPaths.UnmatchedLeft},
					{res.OutputPaths.UnmatchedRight, first.OutputPaths.UnmatchedRight},
				} {
					q := "SELECT * FROM read_parquet('%s')"
					kallatest.SameRows(t, filepath.Base(f[0]), ducktest.Rows(t, fmt.Sprintf(q, f[0])), ducktest.Rows(t, fmt.Sprintf(q, f[1])))
				}
			}
		})
	}
}

// toParquet copies a CSV file to a Parquet file beside it, with the types
// DuckDB reads, and returns its path.
func toParquet(t *testing.T, csv string) string {
	t.Helper()
	out := strings.TrimSuffix(csv, ".csv") + ".parquet"
	ducktest.Query(t, fmt.Sprintf("COPY (SELECT * FROM read_csv('%s')) TO '%s' (FORMAT parquet)", csv, out))
	return out
}
