package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The split sizes of the suite's engine and Postgres opener: small, so that
// the small data sets of the suite split.
const (
	minRangePages    = 2
	minCSVSplitBytes = 65536
)

// stageSplits reads side 0 of job as a cluster's stage tasks do: it asks
// for up to n splits the way the coordinator does (the plan cuts files,
// distributed.Runner.Split a source the plan marks Coordinate), stages each split (or the
// whole source when it does not split) into a folder of its own, and
// returns the staged Parquet files and how many splits there were (0:
// read whole).
//
// This is the one place the suite calls the distributed API, so that a
// move of it (issue 12) changes only this function.
func stageSplits(t *testing.T, r *kalla.Runner, job *kalla.Job, n int) (files []string, splits int) {
	t.Helper()
	ctx := context.Background()
	dr := distributed.NewRunner(r)
	plan, err := dr.Plan(ctx, job, distributed.PlanSpec{Splits: n})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Mode == distributed.SplitSingle {
		t.Fatalf("plan is %s (%s): the job must split", plan.Mode, plan.Reason)
	}
	var parts []*kalla.SourceSplit
	for i := range plan.Splits[0] {
		parts = append(parts, &plan.Splits[0][i])
	}
	if parts == nil && plan.Coordinate[0] {
		ss, err := dr.Split(ctx, job, 0, n)
		if err != nil {
			t.Fatalf("split source: %v", err)
		}
		if ss != nil {
			defer ss.Release()
			for i := range ss.Splits {
				parts = append(parts, &ss.Splits[i])
			}
		}
	}
	splits = len(parts)
	if parts == nil {
		parts = []*kalla.SourceSplit{nil}
	}
	for i, sp := range parts {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("split%d", i))
		_, err := dr.Stage(ctx, job, distributed.StageSpec{Side: 0, Hash: plan.Hash[0], Parts: 1, Dir: dir, Split: sp})
		if err != nil {
			t.Fatalf("stage split %d: %v", i, err)
		}
		staged, err := filepath.Glob(filepath.Join(dir, distributed.PartitionFolder(0), "*.parquet"))
		if err != nil || len(staged) == 0 {
			t.Fatalf("no staged file for split %d in %s: %v", i, dir, err)
		}
		files = append(files, staged...)
	}
	return files, splits
}

// testSplits: the splits of a source hold every row that passes its
// filters exactly once, with the source's values; a kind that does not
// split is read as one split.
func testSplits(t *testing.T, k Kind, uri string) {
	for _, c := range []struct {
		name    string
		filters []kalla.Filter
		where   string
	}{
		{"all", nil, "true"},
		{"filtered", []kalla.Filter{filt("amount", kalla.OpGte, 500)}, "amount >= 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k.known(t)
			files, n := stageSplits(t, k.r, matchNothing(t, uri, c.filters...), 4)
			switch {
			case k.Splits && n < 2:
				t.Errorf("%d splits, want 2 to 4: the kind splits", n)
			case !k.Splits && n != 0:
				t.Errorf("%d splits of a kind that does not split", n)
			case n > 4:
				t.Errorf("%d splits, want at most 4", n)
			}
			list := "'" + strings.Join(files, "', '") + "'"
			cols := "id, note, amount::VARCHAR, due::VARCHAR"
			got := ducktest.Rows(t, fmt.Sprintf("SELECT %s FROM read_parquet([%s])", cols, list))
			want := reference(t, fmt.Sprintf("SELECT %s FROM (%s) WHERE %s", cols, largeData, c.where))
			kallatest.SameRows(t, "rows of all splits", got, want)
		})
	}
}
