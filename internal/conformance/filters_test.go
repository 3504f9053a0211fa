package conformance

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// filterCases are every filter op on text, number and date columns, each
// with the WHERE clause that selects the same rows of typedData.
var filterCases = []struct {
	name   string
	filter kalla.Filter
	where  string
}{
	{"text_eq", filt("code", kalla.OpEq, "007"), "code = '007'"},
	{"text_eq_empty", filt("code", kalla.OpEq, ""), "code = ''"},
	{"text_neq", filt("code", kalla.OpNeq, "007"), "code <> '007'"},
	{"text_gt", filt("code", kalla.OpGt, "7"), "code > '7'"},
	{"text_gte", filt("code", kalla.OpGte, "7"), "code >= '7'"},
	{"text_lt", filt("code", kalla.OpLt, "abc"), "code < 'abc'"},
	{"text_lte", filt("code", kalla.OpLte, "abc"), "code <= 'abc'"},
	{"text_between", filt("code", kalla.OpBetween, []string{"0", "b"}), "code BETWEEN '0' AND 'b'"},
	{"text_in", filt("code", kalla.OpIn, []string{"007", "ünïcødé ✓", "none"}), "code IN ('007', 'ünïcødé ✓', 'none')"},
	{"text_like", filt("note", kalla.OpLike, "%quotes%"), `note LIKE '%quotes%'`},
	{"text_like_newline", filt("note", kalla.OpLike, "line one\nline%"), "note LIKE 'line one' || chr(10) || 'line%'"},
	{"number_eq", filt("amount", kalla.OpEq, 10.5), "amount = 10.50"},
	{"number_neq", filt("amount", kalla.OpNeq, 10.5), "amount <> 10.50"},
	{"number_gt", filt("amount", kalla.OpGt, 0), "amount > 0"},
	{"number_gte", filt("amount", kalla.OpGte, 0), "amount >= 0"},
	{"number_lt", filt("amount", kalla.OpLt, 0.01), "amount < 0.01"},
	{"number_lte", filt("amount", kalla.OpLte, 0.01), "amount <= 0.01"},
	{"number_between", filt("amount", kalla.OpBetween, []float64{0.01, 10.5}), "amount BETWEEN 0.01 AND 10.50"},
	{"number_in", filt("amount", kalla.OpIn, []float64{10.5, 99999.99, 3}), "amount IN (10.50, 99999.99, 3)"},
	{"number_as_text", filt("amount", kalla.OpEq, "10.50"), "amount = 10.50"},
	{"bigint_gt", filt("id", kalla.OpGt, 4), "id > 4"},
	{"date_eq", filt("due", kalla.OpEq, "2026-02-28"), "due = DATE '2026-02-28'"},
	{"date_neq", filt("due", kalla.OpNeq, "2026-02-28"), "due <> DATE '2026-02-28'"},
	{"date_gt", filt("due", kalla.OpGt, "2026-01-31"), "due > DATE '2026-01-31'"},
	{"date_gte", filt("due", kalla.OpGte, "2026-01-31"), "due >= DATE '2026-01-31'"},
	{"date_lt", filt("due", kalla.OpLt, "2026-01-31"), "due < DATE '2026-01-31'"},
	{"date_lte", filt("due", kalla.OpLte, "2026-01-31"), "due <= DATE '2026-01-31'"},
	{"date_between", filt("due", kalla.OpBetween, []string{"2026-01-15", "2026-02-28"}), "due BETWEEN DATE '2026-01-15' AND DATE '2026-02-28'"},
	{"date_in", filt("due", kalla.OpIn, []string{"2026-12-31", "1970-01-01"}), "due IN (DATE '2026-12-31', DATE '1970-01-01')"},
	{"number_like", filt("amount", kalla.OpLike, "10.%"), "amount::VARCHAR LIKE '10.%'"},
	{"date_like", filt("due", kalla.OpLike, "2026-01-%"), "due::VARCHAR LIKE '2026-01-%'"},
	{"timestamp_gt", filt("ts", kalla.OpGt, "2026-01-31 08:00:00"), "ts > TIMESTAMP '2026-01-31 08:00:00'"},
	{"timestamp_like", filt("ts", kalla.OpLike, "2026-03-01 12:34%"), "strftime(ts, '%Y-%m-%d %H:%M') = '2026-03-01 12:34'"},
	{"timestamptz_gte", filt("ts_tz", kalla.OpGte, "2026-03-01 10:34:56.789012+00"), "ts_tz >= TIMESTAMPTZ '2026-03-01 10:34:56.789012+00'"},
	{"timestamptz_between", filt("ts_tz", kalla.OpBetween, []string{"2026-01-31T08:00:00Z", "2026-02-01 12:00:00+00"}),
		"ts_tz BETWEEN TIMESTAMPTZ '2026-01-31 08:00:00+00' AND TIMESTAMPTZ '2026-02-01 12:00:00+00'"},
	{"timestamptz_like", filt("ts_tz", kalla.OpLike, "2026-01-31 08:00:00%"), "epoch_us(ts_tz) = epoch_us(TIMESTAMPTZ '2026-01-31 08:00:00+00')"},
	{"uuid_eq", filt("ref", kalla.OpEq, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), "id = 1"},
	{"uuid_in", filt("ref", kalla.OpIn, []string{"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}), "id IN (2, 3)"},
	{"boolean_in", filt("paid", kalla.OpIn, []bool{false}), "paid = false"},
	{"boolean_eq", filt("paid", kalla.OpEq, true), "paid = true"},
}

// references caches what queries of the reference data sets select, the
// same for every kind.
var references sync.Map

// reference is ducktest.Rows(t, q), run once per q.
func reference(t *testing.T, q string) []string {
	t.Helper()
	if rows, ok := references.Load(q); ok {
		return rows.([]string)
	}
	rows := ducktest.Rows(t, q)
	references.Store(q, rows)
	return rows
}

func filt(col string, op kalla.FilterOp, v any) kalla.Filter {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return kalla.Filter{Column: col, Op: op, Value: raw}
}

// testFilters: each filter keeps exactly the rows its SQL meaning keeps,
// whatever the kind, and a filter a column cannot hold is a validation
// error naming the filter.
func testFilters(t *testing.T, k Kind, uri string) {
	for _, c := range filterCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k.known(t)
			got := ducktest.Rows(t, "SELECT id FROM "+runLeft(t, k, uri, c.filter))
			want := reference(t, fmt.Sprintf("SELECT id FROM (%s) WHERE %s", typedData, c.where))
			if len(want) == 0 {
				t.Fatalf("case selects no row: it proves nothing")
			}
			kallatest.SameRows(t, "ids", got, want)
		})
	}
	for _, c := range []struct {
		name   string
		filter kalla.Filter
		field  string
	}{
		{"bad_date", filt("due", kalla.OpEq, "not a date"), "sources[0].filters[0].value"},
		{"bad_number", filt("amount", kalla.OpGt, "ten"), "sources[0].filters[0].value"},
		{"missing_column", filt("nope", kalla.OpEq, 1), "sources[0].filters[0].column"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k.known(t)
			_, err := k.r.Run(t.Context(), matchNothing(t, uri, c.filter), nil)
			var v *kalla.ValidationError
			if !asValidation(err, &v) {
				t.Fatalf("got %v, want a validation error on %s", err, c.field)
			}
			if v.Field != c.field {
				t.Errorf("error on field %q, want %q: %v", v.Field, c.field, err)
			}
		})
	}
}
