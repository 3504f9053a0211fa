package duckdb_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// The carried files are read in place while the run goes on, not copied
// when it starts: a job whose from is its own output_path still reads the
// previous result to the end (the new one is published after the carry-over
// counts), so it writes what the same job carrying from a copy of that
// result writes.
func TestCarryOverFromOwnOutput(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	b.write(t, "bank.csv", "id,amount,d\nA1,10.00,2026-03-01\nA2,20.00,2026-03-01\nA3,30.00,2026-01-01\n")
	b.write(t, "ledger.csv", "pid,ref,amount\nP1,A1,10.00\nP9,ZZ,1.00\n")
	b.run(t, b.carryJob("", "2026-03-01", "same"))
	copyDir(t, filepath.Join(b.dir, "same"), filepath.Join(b.dir, "copy"))

	b.write(t, "bank.csv", "id,amount,d\nA3,31.00,2026-01-01\nA5,50.00,2026-03-02\n")
	b.write(t, "ledger.csv", "pid,ref,amount\nP2,A2,20.00\n")
	maxAge := 45
	var res [2]*kalla.Result
	runID := kalla.NewRunID()
	for i, from := range []string{"copy", "same"} {
		job := b.carryJob(filepath.Join(b.dir, from), "2026-03-02", []string{"fromcopy", "same"}[i])
		job.RunID = runID
		job.CarryOver.MaxAgeDays, job.CarryOver.AgeFrom = &maxAge, "d"
		res[i] = b.run(t, job)
	}
	if !reflect.DeepEqual(res[0].CarryOver, res[1].CarryOver) || !reflect.DeepEqual(res[0].Ageing, res[1].Ageing) {
		t.Errorf("from its own output: carry_over %+v ageing %+v; from a copy: %+v %+v", res[1].CarryOver, res[1].Ageing, res[0].CarryOver, res[0].Ageing)
	}
	if res[0].CarryOver.Carried.Left != 2 || res[0].CarryOver.Cleared.Left != 1 || res[0].CarryOver.Replaced.Left != 1 || res[0].CarryOver.Expired.Left != 1 {
		t.Errorf("carry_over %+v: want 2 carried (A2, A3), A2 cleared, A3 replaced and expired (60 days)", res[0].CarryOver)
	}
	cols := "id, amount, _kalla_first_seen_run, _kalla_runs_open, _kalla_age_days"
	for _, f := range []func(*kalla.Result) string{
		func(r *kalla.Result) string { return r.OutputPaths.Matched },
		func(r *kalla.Result) string { return r.OutputPaths.UnmatchedRight },
	} {
		kallatest.SameRows(t, filepath.Base(f(res[1])), parquet(t, f(res[1]), "*"), parquet(t, f(res[0]), "*"))
	}
	for _, f := range []func(*kalla.Result) string{
		func(r *kalla.Result) string { return r.OutputPaths.UnmatchedLeft },
		func(r *kalla.Result) string { return r.OutputPaths.ExpiredLeft },
	} {
		kallatest.SameRows(t, filepath.Base(f(res[1])), parquet(t, f(res[1]), cols), parquet(t, f(res[0]), cols))
	}
}

// copyDir copies the files of the folder src into a new folder dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
