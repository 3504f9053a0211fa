package duckdb_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// Planted exceptions: each unmatched row of these files has one known
// reason, nearest candidate, failed condition and distance.
const (
	explainInvoices = `id,ref,amount
I1,R1,100.00
I2,R2,200.00
I3,R3,50.00
I4,R4,75.00
I5,,20.00
I6,R6,30.00
`
	explainPayments = `pid,ref,amount
P1,R1,100.50
P2,R2,200.51
P3,R9,10.00
P4,R4,75.00
P5,R4,75.20
P6,R6,30.10
P7,R6,30.10
`
	explainSQL = `SELECT i.id, p.pid, abs(i.amount - p.amount) AS amount_diff
FROM left_src i JOIN right_src p ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50)`
)

// explainJob is the planted job: one exclusive rule over both sides that
// leaves ties unmatched, explained.
func explainJob(b *bundle, left, right string) *kalla.Job {
	job := b.job("", left, right, []string{"id"}, []string{"pid"})
	job.Explain = true
	job.Rules = []kalla.Rule{{Name: "by_ref", MatchSQL: explainSQL,
		Exclusive: &kalla.Exclusive{OrderBy: []string{"amount_diff"}, Ties: kalla.TiesLeaveUnmatched}}}
	return job
}

const explainColumns = "* EXCLUDE (ref, amount)"

func TestExplainPlantedCases(t *testing.T) {
	for _, format := range []string{"csv", "parquet"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			b := setup(t, duckdb.Config{})
			left, right := b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments)
			if format == "parquet" {
				left, right = amountsToParquet(t, left), amountsToParquet(t, right)
			}
			res := b.run(t, explainJob(b, left, right))

			kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{
				"by_ref|I1|P1|0.50", // exactly at the tolerance
				"by_ref|I4|P4|0.00", // the better of a double payment
			})
			kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, explainColumns), []string{
				"I2|outside_rule|P2|by_ref|['tolerance_match(i.amount, p.amount, 0.50)']|['amount_diff = 0.51', 'abs(i.amount - p.amount) = 0.51']|NULL", // one cent over
				"I3|no_candidate|NULL|NULL|NULL|NULL|NULL",
				"I5|null_key|NULL|NULL|NULL|NULL|NULL",
				"I6|tie|NULL|by_ref|NULL|NULL|NULL", // two payments equally near
			})
			kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, explainColumns), []string{
				"P2|outside_rule|I2|by_ref|['tolerance_match(i.amount, p.amount, 0.50)']|['amount_diff = 0.51', 'abs(i.amount - p.amount) = 0.51']|NULL",
				"P3|no_candidate|NULL|NULL|NULL|NULL|NULL", // an unknown reference
				"P5|taken|I4|by_ref|[]|['amount_diff = 0.20', 'abs(i.amount - p.amount) = 0.20']|by_ref",
				"P6|tie|I6|by_ref|[]|['amount_diff = 0.10', 'abs(i.amount - p.amount) = 0.10']|NULL",
				"P7|tie|I6|by_ref|[]|['amount_diff = 0.10', 'abs(i.amount - p.amount) = 0.10']|NULL",
			})
			want := &kalla.ReasonCounts{
				Left:  map[string]int64{"outside_rule": 1, "no_candidate": 1, "null_key": 1, "tie": 1},
				Right: map[string]int64{"outside_rule": 1, "no_candidate": 1, "taken": 1, "tie": 2},
			}
			if !reflect.DeepEqual(res.Reasons, want) {
				t.Errorf("reasons %+v, want %+v", res.Reasons, want)
			}
			var summary kalla.Result
			raw, err := os.ReadFile(filepath.Join(filepath.Dir(res.OutputPaths.Matched), kalla.SummaryFile))
			if err != nil || json.Unmarshal(raw, &summary) != nil || !reflect.DeepEqual(summary.Reasons, want) {
				t.Errorf("summary.json reasons: %s (%v)", raw, err)
			}
			if res.Rules[0].Ties != 1 {
				t.Errorf("rule counts %+v: want 1 tie (I6)", res.Rules[0])
			}
		})
	}
}

// TestExplainOnlyWhenAsked: a job that does not explain writes the
// unmatched rows exactly as they are in the source.
func TestExplainOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	job := explainJob(b, b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments))
	job.Explain = false
	res := b.run(t, job)
	cols := ducktest.Rows(t, "SELECT name FROM parquet_schema('"+res.OutputPaths.UnmatchedLeft+"') WHERE num_children IS NULL")
	kallatest.SameRows(t, "unmatched columns", cols, []string{"amount", "id", "ref"})
	if res.Reasons != nil {
		t.Errorf("reasons %+v for a job that does not explain", res.Reasons)
	}
}

// TestExplainRefusesRulesWithoutKey: a rule with no equality between the
// sources cannot be explained, and the error says so before any row is
// read.
func TestExplainRefusesRulesWithoutKey(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	job := explainJob(b, b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments))
	job.Rules[0].MatchSQL = "SELECT i.id, p.pid, 0 AS amount_diff FROM left_src i JOIN right_src p ON tolerance_match(i.amount, p.amount, 0.5)"
	_, err := b.runner.Run(t.Context(), job, nil)
	var v *kalla.ValidationError
	if !errors.As(err, &v) || v.Field != "rules[0].match_sql" {
		t.Fatalf("error %v, want a validation error on rules[0].match_sql", err)
	}
}

// amountsToParquet writes the CSV file at path as Parquet beside it, typed as
// DuckDB reads it with the amount as DECIMAL.
func amountsToParquet(t *testing.T, path string) string {
	t.Helper()
	out := path[:len(path)-len(filepath.Ext(path))] + ".parquet"
	ducktest.Query(t, "COPY (SELECT * REPLACE (CAST(amount AS DECIMAL(12,2)) AS amount) FROM read_csv('"+path+"', all_varchar = true)) TO '"+out+"'")
	return out
}
