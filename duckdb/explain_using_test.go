package duckdb_test

import (
	"reflect"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestExplainJoinUsing: a rule joining USING (ref) is keyed on ref as much
// as one written ON p.ref = i.ref. Explained from its pairs it matches what
// the rule matches run without explain (the pairs once joined on the WHERE
// equality alone, dropping USING, and matched I6 with P4 of another ref),
// and both ways of explaining give the same reasons, found among the rows
// of the row's own ref (joined again without it, I6 was said to be taken).
func TestExplainJoinUsing(t *testing.T) {
	const invoices = "id,ref,alt,amount\nI1,R1,A1,100.00\nI2,R2,A2,200.00\nI3,R3,A3,\nI4,R4,A4,75.00\nI5,,A5,20.00\nI6,R6,R4,75.00\n"
	const payments = "pid,ref,ref2,amount\nP1,R1,A1,100.40\nP2,R2,A2,201.00\nP3,R3,A3,50.00\nP4,R4,A4,75.00\nP5,R4,A4,75.30\nP6,R6,A6,\n"
	for name, tc := range map[string]struct {
		sql     string
		matched []string
		reasons *kalla.ReasonCounts
	}{
		"using and an equality": {
			sql:     "SELECT i.id, p.pid FROM left_src i JOIN right_src p USING (ref) WHERE i.amount = p.amount",
			matched: []string{"r|I4|P4"},
			// I3 and P6 have a NULL amount, I5 a NULL ref: a NULL key.
			reasons: &kalla.ReasonCounts{
				Left:  map[string]int64{"no_candidate": 3, "null_key": 2},
				Right: map[string]int64{"no_candidate": 4, "null_key": 1},
			},
		},
		"using and a tolerance": {
			sql:     "SELECT * FROM left_src i JOIN right_src p USING (ref) WHERE tolerance_match(i.amount, p.amount, 0.50)",
			matched: []string{"r|I1|R1|A1|100.00|P1|A1|100.40", "r|I4|R4|A4|75.00|P4|A4|75.00", "r|I4|R4|A4|75.00|P5|A4|75.30"},
			reasons: &kalla.ReasonCounts{
				Left:  map[string]int64{"outside_rule": 3, "null_key": 1},
				Right: map[string]int64{"outside_rule": 3},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			mk := func(explain bool) func(b *bundle) *kalla.Job {
				return func(b *bundle) *kalla.Job {
					job := b.job("", b.write(t, "invoices.csv", invoices), b.write(t, "payments.csv", payments), []string{"id"}, []string{"pid"})
					job.Explain = explain
					job.Rules = []kalla.Rule{{Name: "r", MatchSQL: tc.sql}}
					return job
				}
			}
			got := runExplained(t, true, mk(true))
			sameExplained(t, got, runExplained(t, false, mk(true)))
			kallatest.SameRows(t, "matched", got.files["matched"], tc.matched)
			kallatest.SameRows(t, "matched without explain", runExplained(t, true, mk(false)).files["matched"], tc.matched)
			if !reflect.DeepEqual(got.res.Reasons, tc.reasons) {
				t.Errorf("reasons %+v, want %+v", got.res.Reasons, tc.reasons)
			}
		})
	}
}
