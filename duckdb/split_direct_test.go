package duckdb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// runSplit runs job the way the cluster does, every task in this process.
// The sides in direct are read in place, as the cluster reads Parquet
// sources: each match task reads their partition (or the whole broadcast
// side) from the source files; the other sides are staged.
func runSplit(t *testing.T, r *kalla.Runner, job *kalla.Job, parts int, direct [2]bool) (kalla.SplitPlan, *kalla.Result) {
	t.Helper()
	ctx := context.Background()
	plan, err := r.PlanSplit(ctx, job, 1)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Mode == kalla.SplitSingle {
		res, err := r.Run(ctx, job, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plan, res
	}
	if plan.Direct != [2]bool{true, true} {
		t.Fatalf("Parquet sources not read in place: %+v", plan.Direct)
	}
	root := t.TempDir()
	counts := plan.Rows
	var cols [2][]kalla.StagedColumn
	var dirs [2]string
	for side := range 2 {
		if direct[side] {
			continue
		}
		dirs[side] = filepath.Join(root, fmt.Sprint("stage", side))
		st, err := r.StageSource(ctx, job, kalla.StageSpec{Side: side, Hash: plan.Hash[side], Parts: parts, Dir: dirs[side]})
		if err != nil {
			t.Fatalf("stage %d: %v", side, err)
		}
		if st.Rows != plan.Rows[side] {
			t.Errorf("side %d: staged %d rows, the plan counted %d", side, st.Rows, plan.Rows[side])
		}
		counts[side], cols[side] = st.Rows, st.Columns
	}
	broadcast := -1
	if plan.Mode == kalla.SplitBroadcast {
		broadcast = 0
	}
	m := kalla.MergeSpec{Spec: plan.Spec, Broadcast: broadcast}
	names := [2]string{kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile}
	for p := range parts {
		var in [2]kalla.StagedSet
		for side := range 2 {
			q := p
			if side == broadcast {
				q = -1
			}
			if direct[side] {
				in[side] = kalla.StagedSet{Source: &kalla.SourcePartition{Hash: plan.Hash[side], Parts: parts, Partition: q}}
				continue
			}
			files, err := kalla.PartitionFiles(dirs[side], q)
			if err != nil {
				t.Fatal(err)
			}
			in[side] = kalla.StagedSet{Files: files, Columns: cols[side]}
		}
		dir := filepath.Join(root, fmt.Sprint("match", p))
		if _, err := r.MatchPartition(ctx, job, plan.Spec, in, dir); err != nil {
			t.Fatalf("match %d: %v", p, err)
		}
		m.Matched = append(m.Matched, filepath.Join(dir, kalla.MatchedFile))
		for side := range 2 {
			if side != broadcast {
				m.Unmatched[side] = append(m.Unmatched[side], filepath.Join(dir, names[side]))
			}
		}
	}
	switch {
	case broadcast >= 0 && direct[broadcast]:
		m.BroadcastFiles = kalla.StagedSet{Source: &kalla.SourcePartition{Partition: -1}}
	case broadcast >= 0:
		files, _ := kalla.PartitionFiles(dirs[broadcast], -1)
		m.BroadcastFiles = kalla.StagedSet{Files: files, Columns: cols[broadcast]}
	}
	res, err := r.MergeResults(ctx, job, m, counts, time.Now())
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	return plan, res
}

// Reading Parquet partitions in place gives exactly the local results for
// every pattern, with and without source filters (NULL keys included: the
// payments' NULL invoice_ref rows land in one partition and stay unmatched),
// for both sources read in place or one of them staged (a database beside a
// Parquet file): a row is in the same partition either way.
func TestSplitDirectEqualsLocal(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	inv, pay := ducktest.WritePatternParquet(t, b.dir)
	for _, c := range []struct {
		filtered bool
		direct   [2]bool
	}{{false, [2]bool{true, true}}, {true, [2]bool{true, true}}, {true, [2]bool{true, false}}, {false, [2]bool{false, true}}} {
		filtered := c.filtered
		for _, pat := range patterns {
			t.Run(fmt.Sprintf("%s/filtered=%v/direct=%v", pat.name, filtered, c.direct), func(t *testing.T) {
				local := b.job(pat.sql, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
				if filtered {
					local.Sources[0].Filters = []kalla.Filter{{Column: "customer", Op: kalla.OpNeq, Value: json.RawMessage(`"c3"`)}}
					local.Sources[1].Filters = []kalla.Filter{{Column: "payment_id", Op: kalla.OpLt, Value: json.RawMessage("550000")}}
				}
				local.OutputPath = filepath.Join(b.dir, pat.name, fmt.Sprint(filtered, c.direct), "local")
				want := b.run(t, local)
				split := *local
				split.OutputPath = filepath.Join(b.dir, pat.name, fmt.Sprint(filtered, c.direct), "split")
				plan, got := runSplit(t, b.runner, &split, 3, c.direct)
				if plan.Mode != pat.mode {
					t.Errorf("mode %s (%s), want %s", plan.Mode, plan.Reason, pat.mode)
				}
				if want.MatchedCount == 0 {
					t.Errorf("pattern finds no match")
				}
				sameResults(t, want, got)
			})
		}
	}
}
