package duckdb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// carryJob is a job over the bundle's bank and ledger files carrying from
// from (empty: a chain's first run) on asOf, writing into out.
func (b *bundle) carryJob(from, asOf, out string) *kalla.Job {
	job := b.job("SELECT l.id AS left_src_id, r.pid AS right_src_pid FROM left_src l JOIN right_src r ON r.ref = l.id AND r.amount = l.amount",
		filepath.Join(b.dir, "bank.csv"), filepath.Join(b.dir, "ledger.csv"), []string{"id"}, []string{"pid"})
	job.OutputPath = filepath.Join(b.dir, out)
	job.CarryOver = &kalla.CarryOver{From: from, AsOf: asOf}
	return job
}

// A dry run of a carry-over job counts what the run writes (carried,
// replaced) and writes nothing, its expired file included; cleared and
// ageing, which are read from the written files, are not reported.
// Rows with a NULL key are carried like any other and never replace one
// another. A carried key that appears twice in the previous file does not
// double today's row.
func TestCarryOverDryRunAndNullKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	b.write(t, "bank.csv", "id,amount,d\nA1,10.00,2026-03-01\n,5.00,2026-03-01\nA2,20.00,2026-01-01\n")
	b.write(t, "ledger.csv", "pid,ref,amount\nP9,ZZ,1.00\n")
	day1 := b.run(t, b.carryJob("", "2026-03-01", "day1"))
	if day1.UnmatchedLeftCount != 3 {
		t.Fatalf("day 1: %+v", day1)
	}
	// The previous file holds A1 twice, as a result concatenated by hand
	// might.
	prev := filepath.Join(b.dir, "day1", kalla.UnmatchedLeftFile)
	ducktest.Query(t, "COPY (SELECT * FROM '"+prev+"' UNION ALL SELECT * FROM '"+prev+"' WHERE id = 'A1') TO '"+prev+".tmp' (FORMAT parquet)")
	if err := os.Rename(prev+".tmp", prev); err != nil {
		t.Fatal(err)
	}

	b.write(t, "bank.csv", "id,amount,d\nA1,10.00,2026-03-01\n,6.00,2026-03-04\n")
	b.write(t, "ledger.csv", "pid,ref,amount\nP2,A2,20.00\n")
	job := b.carryJob(filepath.Join(b.dir, "day1"), "2026-03-04", "day2")
	maxAge := 30
	job.CarryOver.MaxAgeDays, job.CarryOver.AgeFrom = &maxAge, "d"
	dry, err := b.runner.DryRun(context.Background(), job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(job.OutputPath); err == nil {
		t.Error("the dry run wrote its output folder")
	}
	res := b.run(t, job)
	// A1 once (today's, carried twice), the two NULL-key rows, and A2
	// expired (62 days > 30) before it could match P2.
	kallatest.SameRows(t, "unmatched_left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, amount, _kalla_runs_open, _kalla_age_days"),
		[]string{"A1|10.00|2|3", "NULL|5.00|2|3", "NULL|6.00|1|0"})
	kallatest.SameRows(t, "expired_left", parquet(t, res.OutputPaths.ExpiredLeft, "id, _kalla_runs_open, _kalla_age_days"),
		[]string{"A2|2|62"})
	if res.CarryOver.Carried.Left != 4 || res.CarryOver.Replaced.Left != 2 || res.CarryOver.Expired.Left != 1 {
		t.Errorf("carry_over %+v", res.CarryOver)
	}
	if dry.CarryOver == nil || dry.CarryOver.Carried != res.CarryOver.Carried || dry.CarryOver.Replaced != res.CarryOver.Replaced ||
		dry.CarryOver.Expired != res.CarryOver.Expired || dry.Ageing != nil || dry.UnmatchedLeftCount != res.UnmatchedLeftCount {
		t.Errorf("dry run %+v %+v, run %+v %+v", dry, dry.CarryOver, res, res.CarryOver)
	}
}
