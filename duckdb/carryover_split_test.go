package duckdb_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A carry-over job partitioned on a column of a composite primary key
// (the bank's id of (id, line), the ledger's pid) gives the local results
// at every partition count, its sides read in place or staged: NULL keys
// (in the partition column or in another key column) never replace a row
// and are carried like any other, a key carried twice gives today's row
// once, a key sent again replaces its carried row in either side, and old
// rows expire, today's row of a carried key included.
func TestSplitCarryOverEqualsLocal(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	write := func(day, bank, ledger string) [2]string {
		dir := filepath.Join(b.dir, day)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var out [2]string
		for i, f := range []struct{ name, rows, types string }{
			{"bank", "id,line,amount,d\n" + bank, "{'id': 'VARCHAR', 'line': 'INTEGER', 'amount': 'DECIMAL(18,2)', 'd': 'DATE'}"},
			{"ledger", "pid,ref,amount\n" + ledger, "{'pid': 'VARCHAR', 'ref': 'VARCHAR', 'amount': 'DECIMAL(18,2)'}"},
		} {
			csv := b.write(t, filepath.Join(day, f.name+".csv"), f.rows)
			out[i] = filepath.Join(dir, f.name+".parquet")
			ducktest.Query(t, fmt.Sprintf("COPY (SELECT * FROM read_csv('%s', types = %s)) TO '%s' (FORMAT parquet)", csv, f.types, out[i]))
		}
		return out
	}
	runIDs := map[string]string{filepath.Join(b.dir, "day1"): kalla.NewRunID(), filepath.Join(b.dir, "day2"): kalla.NewRunID()}
	job := func(src [2]string, out string, carry *kalla.CarryOver) *kalla.Job {
		j := b.job("SELECT l.id AS left_src_id, l.line AS left_src_line, r.pid AS right_src_pid FROM left_src l JOIN right_src r ON r.pid = l.id AND r.amount = l.amount",
			src[0], src[1], []string{"line", "id"}, []string{"pid"})
		// Today's rows are first seen by the run: the local and split runs
		// of a day are one run.
		j.OutputPath, j.CarryOver, j.RunID = filepath.Join(b.dir, out), carry, runIDs[filepath.Dir(src[0])]
		return j
	}
	bank1 := "A1,1,10.00,2026-02-20\nA1,2,11.00,2026-02-20\nA2,1,20.00,2025-12-01\nA3,1,30.00,2026-02-25\n" +
		",1,5.00,2026-03-01\n,2,6.00,2026-03-01\nA4,,40.00,2026-02-01\n"
	for i := 1; i <= 9; i++ {
		bank1 += fmt.Sprintf("B%d,1,%d.00,2026-02-%02d\n", i, i, 10+i)
	}
	day1 := b.run(t, job(write("day1", bank1, "B1,x,1.00\nZ9,x,9.00\nZ8,x,8.00\n"), "day1/out", &kalla.CarryOver{AsOf: "2026-03-01"}))
	// The previous file holds A1's first line twice, as a result
	// concatenated by hand might.
	prev := day1.OutputPaths.UnmatchedLeft
	ducktest.Query(t, "COPY (SELECT * FROM '"+prev+"' UNION ALL SELECT * FROM '"+prev+"' WHERE id = 'A1' AND line = 1) TO '"+prev+".tmp' (FORMAT parquet)")
	if err := os.Rename(prev+".tmp", prev); err != nil {
		t.Fatal(err)
	}

	src := write("day2", "A1,1,10.50,2026-02-20\n,3,7.00,2026-03-04\nA4,,40.00,2026-02-01\nB5,1,5.00,2026-02-15\nA2,1,20.00,2025-12-01\nC1,1,100.00,2026-03-04\n",
		"A1,x,11.00\nA3,x,30.00\nB5,x,5.00\nZ9,x,9.50\nC1,x,100.00\n")
	maxAge := 30
	carry := func() *kalla.CarryOver {
		return &kalla.CarryOver{From: filepath.Join(b.dir, "day1", "out"), AsOf: "2026-03-04", MaxAgeDays: &maxAge, AgeFrom: "d"}
	}
	want := b.run(t, job(src, "local", carry()))
	co := want.CarryOver
	if co.Replaced.Left < 3 || co.Replaced.Right != 1 || co.Cleared.Left < 2 || co.Expired.Left == 0 {
		t.Fatalf("the chain lacks a replaced, cleared or expired row: %+v", co)
	}
	for _, parts := range []int{2, 3, 5} {
		for _, direct := range [][2]bool{{true, true}, {false, false}, {true, false}} {
			t.Run(fmt.Sprintf("%d/direct=%v", parts, direct), func(t *testing.T) {
				plan, got := runSplit(t, b.runner, job(src, fmt.Sprintf("split-%d-%v", parts, direct), carry()), parts, direct)
				if plan.Mode != distributed.SplitPartition || plan.AsOf != "2026-03-04" {
					t.Fatalf("plan %s (%s) as of %q", plan.Mode, plan.Reason, plan.AsOf)
				}
				sameResults(t, want, got)
				for _, f := range [][2]string{{want.OutputPaths.ExpiredLeft, got.OutputPaths.ExpiredLeft}, {want.OutputPaths.ExpiredRight, got.OutputPaths.ExpiredRight}} {
					kallatest.SameRows(t, filepath.Base(f[0]), parquet(t, f[1], "*"), parquet(t, f[0], "*"))
				}
			})
		}
	}
}
