package duckdb_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
)

// TestDuplicateKeyBehindNullKeyFails: a pair whose primary key is NULL
// takes no row out of the unmatched ones, so it must not count as a pair
// that accounts for a matched key: here it hid I1's second row, written to
// no output file, and the job passed.
func TestDuplicateKeyBehindNullKeyFails(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", "id,ref,amount\n,R0,1.00\nI1,R1,10.00\nI1,R9,99.00\n")
	right := b.write(t, "payments.csv", "pid,ref,amount\nP0,R0,1.00\nP1,R1,10.00\n")
	exact := "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"
	for _, rules := range []bool{false, true} {
		t.Run(fmt.Sprintf("rules=%v", rules), func(t *testing.T) {
			job := b.job(exact, left, right, []string{"id"}, []string{"pid"})
			job.OutputPath = fmt.Sprintf("%s/out-%v", b.dir, rules)
			if rules {
				job.MatchSQL = ""
				job.Rules = []kalla.Rule{{Name: "exact", MatchSQL: exact}}
			}
			_, err := b.runner.Run(t.Context(), job, nil)
			var v *kalla.ValidationError
			if !errors.As(err, &v) || v.Field != "primary_keys.left_src" || !strings.Contains(err.Error(), "2 rows have id = 'I1'") {
				t.Fatalf("got %v, want a validation error on primary_keys.left_src naming id = 'I1'", err)
			}
		})
	}
}
