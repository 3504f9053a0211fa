package duckdb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// runSplit runs job the way the cluster does, every task in this process.
// The sides in direct are read in place, as the cluster reads Parquet
// sources: each match task reads their partition (or the whole broadcast
// side) from the source files; the other sides are staged.
func runSplit(t *testing.T, kr *kalla.Runner, job *kalla.Job, parts int, direct [2]bool) (distributed.SplitPlan, *kalla.Result) {
	t.Helper()
	ctx := context.Background()
	r := distributed.NewRunner(kr)
	plan, err := r.Plan(ctx, job, distributed.PlanSpec{Splits: 1})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Mode == distributed.SplitSingle {
		res, err := r.Run(ctx, job, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plan, res
	}
	if plan.Direct != [2]bool{true, true} {
		t.Fatalf("Parquet sources not read in place: %+v", plan.Direct)
	}
	if job.CarryOver != nil {
		// As the coordinator does: every task ages to the plan's day.
		fixed, co := *job, *job.CarryOver
		co.AsOf, fixed.CarryOver = plan.AsOf, &co
		job = &fixed
	}
	// The tasks exchange files through a shared staging folder, in the
	// cluster's layout.
	st, err := file.NewStaging(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	attempt := distributed.AttemptDir(job.RunID, "gen")
	if err := st.Create(ctx, distributed.AttemptFolders(attempt)...); err != nil {
		t.Fatal(err)
	}
	local := func(key string) string {
		dir, err := st.Output(ctx, key, "")
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	counts := plan.Rows
	ps := distributed.PartitionSpec{Parts: parts, Spec: plan.Spec, Broadcast: -1}
	for side := range 2 {
		if direct[side] {
			ps.Sides[side] = distributed.PartitionSide{Direct: true, Hash: plan.Hash[side]}
			continue
		}
		dir := distributed.StageDir(attempt, side, 0)
		staged, err := r.Stage(ctx, job, distributed.StageSpec{Side: side, Hash: plan.Hash[side], Parts: parts, Dir: local(dir)})
		if err != nil {
			t.Fatalf("stage %d: %v", side, err)
		}
		if staged.Rows != plan.Rows[side] {
			t.Errorf("side %d: staged %d rows, the plan counted %d", side, staged.Rows, plan.Rows[side])
		}
		counts[side] = staged.Rows
		ps.Sides[side] = distributed.PartitionSide{StageDirs: []string{dir}, Columns: staged.Columns}
		if job.CarryOver != nil {
			ps.Sides[side].Hash = plan.Hash[side]
		}
	}
	if plan.Mode == distributed.SplitBroadcast {
		ps.Broadcast = 0
	}
	m := distributed.MergeSpec{Spec: plan.Spec, Broadcast: ps.Broadcast, Counts: counts, Start: time.Now()}
	for p := range parts {
		ps.Partition = p
		in, err := ps.Inputs(ctx, st, "")
		if err != nil {
			t.Fatal(err)
		}
		dir := distributed.MatchDir(attempt, p)
		c, err := r.Match(ctx, job, plan.Spec, in, local(dir))
		if err != nil {
			t.Fatalf("match %d: %v", p, err)
		}
		m.AddPartition(dir)
		m.Rules = kalla.AddRuleCounts(m.Rules, c.Rules) // as the coordinator sums them
		if job.CarryOver != nil {
			if err := m.AddCarried(dir, c, job.CarryOver.MaxAgeDays != nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ps.Broadcast >= 0 {
		if err := m.SetBroadcast(ctx, st, ps.Sides[ps.Broadcast]); err != nil {
			t.Fatal(err)
		}
	}
	m, err = m.Fetch(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Merge(ctx, job, m)
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
