package duckdb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Rule mistakes that only the sources' schemas reveal are *ValidationError
// values naming the rule's field, found before any row is read; nothing is
// written.
func TestRulesBindErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := b.write(t, "inv.csv", "invoice_id,ref,amount\n1,A,10.00\n")
	pay := b.write(t, "pay.csv", "payment_id,ref,amount\n7,A,10.00\n")
	const exact = "SELECT l.invoice_id, r.payment_id, l.amount - r.amount AS diff FROM left_src l JOIN right_src r ON r.ref = l.ref"
	cases := []struct {
		name  string
		top   *kalla.Exclusive // with match_sql: exact
		rules []kalla.Rule
		field string
		says  string
	}{
		{name: "order_by not returned", rules: []kalla.Rule{
			{Name: "a", MatchSQL: exact},
			{Name: "b", MatchSQL: exact, Exclusive: &kalla.Exclusive{OrderBy: []string{"diff", "day_gap DESC"}}},
		}, field: "rules[1].exclusive.order_by[1]", says: `"day_gap" is not returned by the rule's match_sql (columns: "invoice_id", "payment_id", "diff")`},
		{name: "top-level order_by not returned", top: &kalla.Exclusive{OrderBy: []string{"amount_diff"}},
			field: "exclusive.order_by[0]", says: `"amount_diff"`},
		{name: "decimal and double in one column", rules: []kalla.Rule{
			{Name: "a", MatchSQL: exact},
			{Name: "b", MatchSQL: "SELECT l.invoice_id, r.payment_id, CAST(l.amount AS DOUBLE) AS diff FROM left_src l, right_src r"},
		}, field: "rules[1].match_sql", says: `column "diff" is DOUBLE here but DECIMAL(18,2) in rule "a"`},
		{name: "text and number in one column", rules: []kalla.Rule{
			{Name: "a", MatchSQL: "SELECT l.invoice_id, r.payment_id, l.ref AS note FROM left_src l, right_src r"},
			{Name: "b", MatchSQL: "SELECT l.invoice_id, r.payment_id, 1 AS note FROM left_src l, right_src r"},
		}, field: "rules[1].match_sql", says: `column "note" is INTEGER here but VARCHAR in rule "a"`},
		{name: "reserved column in a rule", rules: []kalla.Rule{
			{Name: "a", MatchSQL: "SELECT l.invoice_id, r.payment_id, 1 AS _kalla_x FROM left_src l, right_src r"},
		}, field: "rules[0].match_sql", says: `"_kalla_x" uses the prefix "_kalla_"`},
		{name: "reserved column in match_sql", top: &kalla.Exclusive{},
			field: "match_sql", says: `"_Kalla_Rule" uses the prefix`},
		{name: "rule without a key", rules: []kalla.Rule{
			{Name: "a", MatchSQL: exact},
			{Name: "b", MatchSQL: "SELECT l.invoice_id FROM left_src l"},
		}, field: "rules[1].match_sql", says: `primary key of "right_src"`},
		{name: "rule syntax error", rules: []kalla.Rule{
			{Name: "a", MatchSQL: exact},
			{Name: "b", MatchSQL: "SELECT l.invoice_id FRM left_src l"},
		}, field: "rules[1].match_sql", says: "syntax"},
		{name: "rule escaping the sandbox", rules: []kalla.Rule{
			{Name: "a", MatchSQL: "SELECT * FROM read_csv('/etc/passwd')"},
		}, field: "rules[0].match_sql", says: "read_csv"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := b.job(exact, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
			job.OutputPath = b.dir + "/out_" + strings.ReplaceAll(tc.name, " ", "_")
			if tc.rules != nil {
				job.MatchSQL, job.Rules = "", tc.rules
			} else {
				job.Exclusive = tc.top
				if tc.name == "reserved column in match_sql" {
					job.MatchSQL = "SELECT l.invoice_id, r.payment_id, 'x' AS _Kalla_Rule FROM left_src l, right_src r"
				}
			}
			_, err := b.runner.Run(context.Background(), job, nil)
			var v *kalla.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("want a validation error, got %v", err)
			}
			if v.Field != tc.field || !strings.Contains(v.Message, tc.says) {
				t.Errorf("got %q / %q, want field %q mentioning %q", v.Field, v.Message, tc.field, tc.says)
			}
			if stage := kalla.ErrorStage(err); stage != kalla.StageValidating {
				t.Errorf("stage %q, want %q", stage, kalla.StageValidating)
			}
			if _, err := os.Stat(job.OutputPath); !os.IsNotExist(err) {
				t.Errorf("output folder exists after a validation error (%v)", err)
			}
		})
	}
}

// Columns of one name stack when no value is lost: integers with decimals
// (a DECIMAL wide enough for both), and decimals of other scales.
func TestRulesStackExactNumbers(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := b.write(t, "inv.csv", "invoice_id,ref,amount\n1,A,10.25\n2,B,7.50\n")
	pay := b.write(t, "pay.csv", "payment_id,ref,amount\n7,A,10.25\n8,B,7.00\n")
	job := b.job("", inv, pay, []string{"invoice_id"}, []string{"payment_id"})
	job.Rules = []kalla.Rule{
		{Name: "exact", MatchSQL: "SELECT l.invoice_id, r.payment_id, l.amount AS v FROM left_src l JOIN right_src r ON r.ref = l.ref AND r.amount = l.amount"},
		{Name: "count", MatchSQL: "SELECT l.invoice_id, r.payment_id, CAST(3 AS BIGINT) AS v FROM left_src l JOIN right_src r ON r.ref = l.ref"},
	}
	res := b.run(t, job)
	kallatest.SameRows(t, "stacked", parquet(t, res.OutputPaths.Matched, "_kalla_rule, invoice_id, payment_id, v"),
		[]string{"count|2|8|3.00", "exact|1|7|10.25"})
	typ := parquet(t, res.OutputPaths.Matched, "DISTINCT typeof(v)")
	if len(typ) != 1 || !strings.HasPrefix(typ[0], "DECIMAL(") || !strings.HasSuffix(typ[0], ",2)") {
		t.Errorf("stacked type %q, want one DECIMAL of scale 2", typ)
	}
}
