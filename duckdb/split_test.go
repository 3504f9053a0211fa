package duckdb_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// patterns are the reconciliation patterns, with the split each must get.
var patterns = []struct {
	name, sql string
	mode      distributed.SplitMode
}{
	{"one_to_one_tolerance", `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
		FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`, distributed.SplitPartition},
	{"one_to_many_split", `SELECT i.invoice_id, p.payment_id, p.amount FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE i.amount = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.invoice_ref = i.invoice_id)`, distributed.SplitPartition},
	{"many_to_one_batch", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON i.batch_id = p.batch_ref
		WHERE p.amount = (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.batch_id = p.batch_ref)`, distributed.SplitPartition},
	{"many_to_many_cross", `SELECT i.invoice_id, p.payment_id, i.customer FROM left_src i JOIN right_src p ON i.customer = p.customer
		WHERE (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.customer = i.customer) = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.customer = p.customer)`, distributed.SplitPartition},
	{"broadcast_no_key", `SELECT i.invoice_id, p.payment_id FROM left_src i, right_src p WHERE i.amount = p.amount AND i.invoice_id < 300`, distributed.SplitPartition},
	{"broadcast_range", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.amount BETWEEN i.amount - 0.001 AND i.amount AND i.invoice_id % 7 = 0`, distributed.SplitBroadcast},
	{"single_aggregate", `SELECT i.invoice_id, max(p.payment_id) AS payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id GROUP BY i.invoice_id`, distributed.SplitSingle},
	{"group_by_no_aggregate", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id GROUP BY i.invoice_id, p.payment_id`, distributed.SplitPartition},
	{"group_by_all_no_aggregate", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id GROUP BY ALL`, distributed.SplitPartition},
	{"single_uncorrelated", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE p.amount < (SELECT avg(amount) FROM right_src)`, distributed.SplitSingle},
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
			plan, got := runSplit(t, b.runner, &split, 3, [2]bool{})
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
	w, g := kallatest.Timeless(*want), kallatest.Timeless(*got)
	if !reflect.DeepEqual(w, g) {
		t.Errorf("result %+v, want %+v", g, w)
	}
	for _, f := range [][2]string{{want.OutputPaths.Matched, got.OutputPaths.Matched}, {want.OutputPaths.UnmatchedLeft, got.OutputPaths.UnmatchedLeft}, {want.OutputPaths.UnmatchedRight, got.OutputPaths.UnmatchedRight}} {
		kallatest.SameRows(t, filepath.Base(f[0])+" types", ducktest.Query(t, "SELECT name || ' ' || type FROM parquet_schema('"+f[1]+"')"), ducktest.Query(t, "SELECT name || ' ' || type FROM parquet_schema('"+f[0]+"')"))
		kallatest.SameRows(t, filepath.Base(f[0]), parquet(t, f[1], "*"), parquet(t, f[0], "*"))
	}
	t.Logf("%+v", g)
}
