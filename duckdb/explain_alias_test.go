package duckdb_test

import (
	"reflect"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestExplainWhereNamesSelectAlias: DuckDB lets a rule's WHERE name an
// expression of its select list (d, below). Joining the unmatched rows
// again evaluated the condition without the select list and failed
// ("Referenced column d not found") after the whole match; it is the
// fallback of explaining from the pairs, so such a rule failed whenever
// its pairs could not be kept. Both ways now give the same explanations,
// with the condition as the user wrote it; a name that is also a source
// column (fee) keeps meaning the column, as in DuckDB, and a lambda's
// parameter (d2) its argument.
func TestExplainWhereNamesSelectAlias(t *testing.T) {
	const invoices = "id,ref,amount,fee\nI1,R1,100.00,1\nI2,R2,200.00,2\nI3,R3,50.00,9\n"
	const payments = "pid,ref,amount\nP1,R1,100.40\nP2,R2,201.00\nP3,R3,49.80\n"
	mk := func(b *bundle) *kalla.Job {
		job := b.job("", b.write(t, "invoices.csv", invoices), b.write(t, "payments.csv", payments), []string{"id"}, []string{"pid"})
		job.Explain = true
		job.Rules = []kalla.Rule{{Name: "r", MatchSQL: `SELECT i.id, p.pid, abs(i.amount - p.amount) AS d, d * 2 AS d2, 0 AS fee
FROM left_src i JOIN right_src p ON p.ref = i.ref WHERE d2 <= 1 AND fee < 5 AND list_bool_and(list_transform([i.amount], d2 -> d2 > 0))`}}
		return job
	}
	got := runExplained(t, true, mk)
	sameExplained(t, got, runExplained(t, false, mk))
	kallatest.SameRows(t, "matched", parquet(t, got.res.OutputPaths.Matched, "id, pid, d"), []string{"I1|P1|0.40"})
	want := &kalla.ReasonCounts{Left: map[string]int64{"outside_rule": 2}, Right: map[string]int64{"outside_rule": 2}}
	if !reflect.DeepEqual(got.res.Reasons, want) {
		t.Errorf("reasons %+v, want %+v", got.res.Reasons, want)
	}
	// I2's payment is 1.00 off (d2 = 2.00); I3 is 0.20 off, but its own
	// fee is 9, which the select list's 0 AS fee would have let through.
	kallatest.SameRows(t, "left", parquet(t, got.res.OutputPaths.UnmatchedLeft, "id, array_to_string(_kalla_near_failed, '; ')"),
		[]string{"I2|d2 <= 1", "I3|fee < 5"})
}
