package duckdb_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestDuplicateKeyOfMatchedRowFails: the unmatched rows are the source
// anti-joined with the matched keys, so a row sharing its primary key with
// a matched row would be in no output. Such a job fails, naming the key and
// the value, and publishes nothing; duplicate keys that no match took lose
// nothing and pass.
func TestDuplicateKeyOfMatchedRowFails(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", "id,ref,amount\nI1,R1,10.00\nI1,R9,99.00\nI2,R2,5.00\nI3,R3,7.00\nI3,R3,8.00\n")
	right := b.write(t, "payments.csv", "pid,ref,amount\nP1,R1,10.00\nP2,R2,5.00\n")
	exact := "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"
	for _, tc := range []struct {
		name string
		job  func() *kalla.Job
	}{
		{"match_sql", func() *kalla.Job { return b.job(exact, left, right, []string{"id"}, []string{"pid"}) }},
		{"rules", func() *kalla.Job {
			j := b.job("", left, right, []string{"id"}, []string{"pid"})
			j.Rules = []kalla.Rule{{Name: "exact", MatchSQL: exact}, {Name: "ref", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref"}}
			return j
		}},
		{"explain", func() *kalla.Job {
			j := b.job(exact, left, right, []string{"id"}, []string{"pid"})
			j.Explain = true
			return j
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := tc.job()
			job.OutputPath = b.dir + "/out-" + tc.name
			_, err := b.runner.Run(t.Context(), job, nil)
			var v *kalla.ValidationError
			if !errors.As(err, &v) || v.Field != "primary_keys.left_src" {
				t.Fatalf("got %v, want a validation error on primary_keys.left_src", err)
			}
			if !strings.Contains(err.Error(), "2 rows have id = 'I1'") {
				t.Errorf("error %q does not name the duplicate key", err)
			}
			if _, err := os.Stat(job.OutputPath + "/summary.json"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed job published summary.json (%v)", err)
			}
		})
	}

	// I3 twice, never matched: both rows are unmatched, nothing is lost.
	ok := b.write(t, "invoices-ok.csv", "id,ref,amount\nI1,R1,10.00\nI2,R2,5.00\nI3,R3,7.00\nI3,R3,8.00\n")
	res := b.run(t, b.job(exact, ok, right, []string{"id"}, []string{"pid"}))
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, amount"), []string{"I3|7.00", "I3|8.00"})
	// One invoice paid twice is not a duplicate key.
	twice := b.write(t, "payments-twice.csv", "pid,ref,amount\nP1,R1,10.00\nP3,R1,10.00\n")
	res = b.run(t, b.job(exact, ok, twice, []string{"id"}, []string{"pid"}))
	if res.MatchedCount != 2 || res.UnmatchedLeftCount != 3 {
		t.Errorf("paid twice: matched %d, unmatched left %d, want 2 and 3", res.MatchedCount, res.UnmatchedLeftCount)
	}
}
