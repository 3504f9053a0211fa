package duckdb_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// patterns are the reconciliation patterns, with the split each must get.
var patterns = []struct {
	name, sql string
	mode      kalla.SplitMode
}{
	{"one_to_one_tolerance", `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
		FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`, kalla.SplitPartition},
	{"one_to_many_split", `SELECT i.invoice_id, p.payment_id, p.amount FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE i.amount = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.invoice_ref = i.invoice_id)`, kalla.SplitPartition},
	{"many_to_one_batch", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON i.batch_id = p.batch_ref
		WHERE p.amount = (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.batch_id = p.batch_ref)`, kalla.SplitPartition},
	{"many_to_many_cross", `SELECT i.invoice_id, p.payment_id, i.customer FROM left_src i JOIN right_src p ON i.customer = p.customer
		WHERE (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.customer = i.customer) = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.customer = p.customer)`, kalla.SplitPartition},
	{"broadcast_no_key", `SELECT i.invoice_id, p.payment_id FROM left_src i, right_src p WHERE i.amount = p.amount AND i.invoice_id < 300`, kalla.SplitPartition},
	{"broadcast_range", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.amount BETWEEN i.amount - 0.001 AND i.amount AND i.invoice_id % 7 = 0`, kalla.SplitBroadcast},
	{"single_aggregate", `SELECT i.invoice_id, max(p.payment_id) AS payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id GROUP BY i.invoice_id`, kalla.SplitSingle},
	{"single_uncorrelated", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE p.amount < (SELECT avg(amount) FROM right_src)`, kalla.SplitSingle},
}

// runSplit runs job the way the cluster does, every task in this process.
func runSplit(t *testing.T, r *kalla.Runner, job *kalla.Job, parts int) (kalla.SplitPlan, *kalla.Result) {
	t.Helper()
	ctx := context.Background()
	plan, err := r.PlanSplit(ctx, job)
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
	root := t.TempDir()
	var counts [2]int64
	var cols [2][]kalla.StagedColumn
	var dirs [2]string
	for side := range 2 {
		dirs[side] = filepath.Join(root, fmt.Sprint("stage", side))
		st, err := r.StageSource(ctx, job, side, plan.Hash[side], parts, dirs[side])
		if err != nil {
			t.Fatalf("stage %d: %v", side, err)
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
	if broadcast >= 0 {
		files, _ := kalla.PartitionFiles(dirs[broadcast], -1)
		m.BroadcastFiles = kalla.StagedSet{Files: files, Columns: cols[broadcast]}
	}
	res, err := r.MergeResults(ctx, job, m, counts, time.Now())
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	return plan, res
}

// Every pattern split into partitions gives exactly the local results: the
// same rows and column types in each file, the same counts.
func TestSplitEqualsLocal(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	inv, pay := ducktest.WritePatternParquet(t, b.dir)
	for _, pat := range patterns {
		t.Run(pat.name, func(t *testing.T) {
			local := b.job(pat.sql, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
			local.OutputPath = filepath.Join(b.dir, pat.name, "local")
			want := b.run(t, local)
			split := *local
			split.OutputPath = filepath.Join(b.dir, pat.name, "split")
			plan, got := runSplit(t, b.runner, &split, 3)
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

func sameResults(t *testing.T, want, got *kalla.Result) {
	t.Helper()
	w, g := *want, *got
	w.ElapsedMS, g.ElapsedMS, w.OutputPaths, g.OutputPaths = 0, 0, kalla.OutputPaths{}, kalla.OutputPaths{}
	if w != g {
		t.Errorf("result %+v, want %+v", g, w)
	}
	for _, f := range [][2]string{{want.OutputPaths.Matched, got.OutputPaths.Matched}, {want.OutputPaths.UnmatchedLeft, got.OutputPaths.UnmatchedLeft}, {want.OutputPaths.UnmatchedRight, got.OutputPaths.UnmatchedRight}} {
		kallatest.SameRows(t, filepath.Base(f[0])+" types", ducktest.Query(t, "SELECT name || ' ' || type FROM parquet_schema('"+f[1]+"')"), ducktest.Query(t, "SELECT name || ' ' || type FROM parquet_schema('"+f[0]+"')"))
		kallatest.SameRows(t, filepath.Base(f[0]), parquet(t, f[1], "*"), parquet(t, f[0], "*"))
	}
	t.Logf("%+v", g)
}
