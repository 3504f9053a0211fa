package duckdb_test

import (
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// toleranceJob is a carry-over job over the bundle's bank and ledger CSVs
// whose rule matches a payment to an invoice within a cent, paid on or
// after its due date: a rule that compares text, not amounts and dates,
// when the carried columns come out as VARCHAR.
func (b *bundle) toleranceJob(from, asOf, out string) *kalla.Job {
	job := b.carryJob(from, asOf, out)
	job.MatchSQL = "SELECT l.id AS left_src_id, r.pid AS right_src_pid FROM left_src l JOIN right_src r " +
		"ON r.ref = l.id AND abs(r.amount - l.amount) <= 0.01 AND r.paid_on >= l.due"
	return job
}

// sourceColumns is the name and type of each column of a result file but
// the lineage ones, in order.
func sourceColumns(t *testing.T, path string) []string {
	t.Helper()
	return ducktest.Query(t, "SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM read_parquet('"+path+"')) "+
		"WHERE NOT starts_with(column_name, '_kalla_')")
}

// On a day whose CSV has a header and no rows, today's columns take the
// carried file's types: the carried DECIMAL amounts and DATEs come out in
// those types with the same values (not as their text), and a day that
// then sends the payments matches them within the tolerance.
func TestCarryOverEmptyCSVDayKeepsTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	b.write(t, "bank.csv", "id,amount,due\nA1,100.00,2026-03-01\nA2,20.50,2026-03-02\nA3,7.25,2026-03-03\n")
	b.write(t, "ledger.csv", "pid,ref,amount,paid_on\nP9,ZZ,1.00,2026-03-01\n")
	day1 := b.run(t, b.toleranceJob("", "2026-03-02", "day1"))
	if day1.UnmatchedLeftCount != 3 {
		t.Fatalf("day 1: %+v", day1)
	}
	d1 := day1.OutputPaths.UnmatchedLeft
	if got := sourceColumns(t, d1); got[1] != "amount DECIMAL(18,2)" || got[2] != "due DATE" {
		t.Fatalf("day 1 types %v, want a DECIMAL amount and a DATE due", got)
	}

	b.write(t, "bank.csv", "id,amount,due\n")
	b.write(t, "ledger.csv", "pid,ref,amount,paid_on\n")
	job := b.toleranceJob(filepath.Join(b.dir, "day1"), "2026-03-03", "day2")
	job.CarryOver.AgeFrom = "due" // a DATE of the carried rows, and of none of today's
	day2 := b.run(t, job)
	d2 := day2.OutputPaths.UnmatchedLeft
	kallatest.SameRows(t, "day 2 types", sourceColumns(t, d2), sourceColumns(t, d1))
	kallatest.SameRows(t, "day 2 unmatched_left", parquet(t, d2, "id, amount, due, _kalla_age_days"),
		ducktest.Rows(t, "SELECT id, amount, due, DATE '2026-03-03' - due FROM read_parquet('"+d1+"')"))
	kallatest.SameRows(t, "day 2 unmatched_right types", sourceColumns(t, day2.OutputPaths.UnmatchedRight),
		sourceColumns(t, day1.OutputPaths.UnmatchedRight))
	if day2.CarryOver == nil || day2.CarryOver.Carried.Left != 3 || day2.UnmatchedLeftCount != 3 {
		t.Fatalf("day 2: %+v %+v", day2, day2.CarryOver)
	}

	// Day 3: the bank is empty again, the payments come. P1 is a cent
	// short, P2 two cents short (outside the tolerance), P3 paid before
	// A3 was due.
	b.write(t, "ledger.csv", "pid,ref,amount,paid_on\nP1,A1,99.99,2026-03-04\nP2,A2,20.48,2026-03-04\nP3,A3,7.25,2026-03-02\n")
	day3 := b.run(t, b.toleranceJob(filepath.Join(b.dir, "day2"), "2026-03-04", "day3"))
	kallatest.SameRows(t, "day 3 matched", parquet(t, day3.OutputPaths.Matched, "left_src_id, right_src_pid"),
		ducktest.Rows(t, "SELECT l.id, r.pid FROM read_parquet('"+d2+"') l JOIN read_csv('"+filepath.Join(b.dir, "ledger.csv")+
			"', types = {'amount': 'DECIMAL(18,2)'}) r ON r.ref = l.id AND abs(r.amount - l.amount) <= 0.01 AND r.paid_on >= l.due"))
	if day3.MatchedCount != 1 {
		t.Errorf("day 3 matched %d, want A1-P1 only", day3.MatchedCount)
	}
	kallatest.SameRows(t, "day 3 types", sourceColumns(t, day3.OutputPaths.UnmatchedLeft), sourceColumns(t, d1))
}

// A CSV column with no value today (every field empty) takes the carried
// type too, while the columns with values keep the types their values
// give; a value today then still decides a column's type, and the carried
// values convert to it exactly.
func TestCarryOverCSVColumnWithoutValues(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	b.write(t, "bank.csv", "id,amount,due\nA1,100.00,2026-03-01\nA2,20.50,2026-03-02\n")
	b.write(t, "ledger.csv", "pid,ref,amount,paid_on\nP9,ZZ,1.00,2026-03-01\n")
	day1 := b.run(t, b.toleranceJob("", "2026-03-02", "day1"))
	d1 := day1.OutputPaths.UnmatchedLeft

	// A4's due is unknown, and so is every due of today's file.
	b.write(t, "bank.csv", "id,amount,due\nA4,5.10,\n")
	job := b.toleranceJob(filepath.Join(b.dir, "day1"), "2026-03-03", "day2")
	job.CarryOver.AgeFrom = "due"
	day2 := b.run(t, job)
	d2 := day2.OutputPaths.UnmatchedLeft
	kallatest.SameRows(t, "day 2 types", sourceColumns(t, d2), sourceColumns(t, d1))
	kallatest.SameRows(t, "day 2 unmatched_left", parquet(t, d2, "id, amount, due, _kalla_age_days"),
		ducktest.Rows(t, "SELECT id, amount, due, DATE '2026-03-03' - due FROM read_parquet('"+d1+"') "+
			"UNION ALL SELECT 'A4', 5.10, NULL, 0"))
}
