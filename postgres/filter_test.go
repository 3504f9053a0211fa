package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kalla-dev/kalla"
)

// Operands that would break or subvert spliced SQL.
const (
	injection = `x'); DROP TABLE payments; --`
	quotes    = `O'Brien "the" \back\slash; {a,b} NULL`
)

func seedPayments(t testing.TB, tb *testBundle) {
	t.Helper()
	tb.db.Exec(t, `CREATE TABLE payments (
		id int, name text, amount numeric(12,2), booked date, at timestamptz, ok boolean, code char(4), tags int[], "we""ird" text)`)
	rows := []struct {
		id     int
		name   string
		amount string
		booked string
		at     string
		ok     bool
		code   string
		tags   string
	}{
		{1, "alice", "10.00", "2024-01-01", "2024-01-01 10:00:00+00", true, "ab", "{1,2}"},
		{2, "bob", "20.50", "2024-01-15", "2024-01-15 23:59:59+00", false, "abcd", "{3}"},
		{3, injection, "-5.25", "2024-02-01", "2024-02-01 00:00:00+00", true, "x", "{}"},
		{4, quotes, "1000.01", "2024-03-01", "2024-03-01 12:30:00+00", false, "", "{1}"},
		{5, "100%_sure", "0.00", "2023-12-31", "2023-12-31 23:00:00-02", true, "zz", "{2,3}"},
	}
	for _, r := range rows {
		tb.db.Exec(t, `INSERT INTO payments VALUES ($1, $2, $3::numeric, $4::date, $5::timestamptz, $6, $7, $8::int[], $2)`,
			r.id, r.name, r.amount, r.booked, r.at, r.ok, r.code, r.tags)
	}
	tb.db.Exec(t, `INSERT INTO payments (id) VALUES (6)`) // NULLs everywhere else
}

func filter(column string, op kalla.FilterOp, value any) kalla.Filter {
	raw, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return kalla.Filter{Column: column, Op: op, Value: raw}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedPayments(t, tb)
	src := tb.open(t, "payments")

	for _, tc := range []struct {
		name    string
		filters []kalla.Filter
		want    []int32
	}{
		{"eq text", []kalla.Filter{filter("name", kalla.OpEq, "bob")}, []int32{2}},
		{"eq injection", []kalla.Filter{filter("name", kalla.OpEq, injection)}, []int32{3}},
		{"eq quotes", []kalla.Filter{filter("name", kalla.OpEq, quotes)}, []int32{4}},
		{"eq quoted column", []kalla.Filter{filter(`we"ird`, kalla.OpEq, quotes)}, []int32{4}},
		{"eq number", []kalla.Filter{filter("amount", kalla.OpEq, json.Number("20.5"))}, []int32{2}},
		{"eq number as string", []kalla.Filter{filter("amount", kalla.OpEq, "20.50")}, []int32{2}},
		// The operand is not rounded to the column's scale.
		{"eq unrounded", []kalla.Filter{filter("amount", kalla.OpEq, json.Number("20.499"))}, nil},
		{"eq bool", []kalla.Filter{filter("ok", kalla.OpEq, true)}, []int32{1, 3, 5}},
		{"eq char padding", []kalla.Filter{filter("code", kalla.OpEq, "ab")}, []int32{1}},
		{"neq", []kalla.Filter{filter("name", kalla.OpNeq, "alice")}, []int32{2, 3, 4, 5}},
		{"gt", []kalla.Filter{filter("amount", kalla.OpGt, json.Number("10"))}, []int32{2, 4}},
		{"gte", []kalla.Filter{filter("amount", kalla.OpGte, json.Number("10"))}, []int32{1, 2, 4}},
		{"lt", []kalla.Filter{filter("amount", kalla.OpLt, json.Number("0"))}, []int32{3}},
		{"lte", []kalla.Filter{filter("amount", kalla.OpLte, json.Number("0"))}, []int32{3, 5}},
		{"lt date", []kalla.Filter{filter("booked", kalla.OpLt, "2024-01-15")}, []int32{1, 5}},
		{"gte timestamptz", []kalla.Filter{filter("at", kalla.OpGte, "2024-01-01 01:00:00Z")}, []int32{1, 2, 3, 4, 5}},
		{"between", []kalla.Filter{filter("booked", kalla.OpBetween, []string{"2024-01-01", "2024-02-01"})}, []int32{1, 2, 3}},
		{"between numbers", []kalla.Filter{filter("amount", kalla.OpBetween, []json.Number{"-10", "10"})}, []int32{1, 3, 5}},
		{"in", []kalla.Filter{filter("name", kalla.OpIn, []string{"alice", injection, quotes, "nobody"})}, []int32{1, 3, 4}},
		{"in numbers", []kalla.Filter{filter("id", kalla.OpIn, []json.Number{"2", "5", "99"})}, []int32{2, 5}},
		{"in NULL text", []kalla.Filter{filter("name", kalla.OpIn, []string{"NULL", "{}"})}, nil},
		{"like", []kalla.Filter{filter("name", kalla.OpLike, "%a%")}, []int32{1, 3, 4}},
		{"like escaped percent", []kalla.Filter{filter("name", kalla.OpLike, `100\%%`)}, []int32{5}},
		{"like injection", []kalla.Filter{filter("name", kalla.OpLike, `%'); DROP TABLE payments; --`)}, []int32{3}},
		{"like non-text column", []kalla.Filter{filter("amount", kalla.OpLike, "%.50")}, []int32{2}},
		{"like array as text", []kalla.Filter{filter("tags", kalla.OpLike, "{1%")}, []int32{1, 4}},
		{"eq array as text", []kalla.Filter{filter("tags", kalla.OpEq, "{3}")}, []int32{2}},
		{"several", []kalla.Filter{
			filter("amount", kalla.OpGte, json.Number("0")),
			filter("ok", kalla.OpEq, true),
			filter("name", kalla.OpNeq, "alice"),
		}, []int32{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, par := range []int{1, 2} {
				checkIDs(t, src, par, tc.want, tc.filters...)
			}
		})
	}

	var n int
	if err := tb.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM payments`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("payments has %d rows (%v) after the injection attempts", n, err)
	}
}

// TestFiltersParallel checks that every stream applies the filters.
func TestFiltersParallel(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 50000)
	src := tb.open(t, "ledger")
	src.minRangePages = 16
	sink, err := scanAll(t, src, 4,
		filter("id", kalla.OpBetween, []json.Number{"100", "40000"}),
		filter("memo", kalla.OpLike, "xxxxx%"),
		filter("amount", kalla.OpNeq, json.Number("200.00")))
	if err != nil {
		t.Fatal(err)
	}
	if sink.writers != 4 {
		t.Errorf("%d streams, want 4", sink.writers)
	}
	want := 0
	for id := 100; id <= 40000; id++ {
		if id%50 >= 5 && id != 20000 {
			want++
		}
	}
	if len(sink.rows) != want {
		t.Errorf("got %d rows, want %d", len(sink.rows), want)
	}
	for _, r := range sink.rows {
		if id := r[0].(int64); id < 100 || id > 40000 || id%50 < 5 || id == 20000 {
			t.Fatalf("row %d passed the filters", id)
		}
	}
}

// TestFiltersOtherTypes compares operands with the types they cannot be
// spliced into as bare words.
func TestFiltersOtherTypes(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE misc (id int, u uuid, j json, jb jsonb, b bytea, tm time, iv interval, f float8)`)
	tb.db.Exec(t, `INSERT INTO misc VALUES
		(1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"a": 1}', '\x0102', '13:00', '1 day', 1.5),
		(2, '00000000-0000-0000-0000-000000000000', '[]', '[1, 2]', '\x', '08:30', '2 hours', -0.25)`)
	src := tb.open(t, "misc")
	for _, tc := range []struct {
		name string
		f    kalla.Filter
		want []int32
	}{
		{"uuid", filter("u", kalla.OpEq, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), []int32{1}},
		{"uuid in", filter("u", kalla.OpIn, []string{"00000000-0000-0000-0000-000000000000"}), []int32{2}},
		{"json as text", filter("j", kalla.OpEq, `{"a": 1}`), []int32{1}},
		{"json like", filter("j", kalla.OpLike, `[%`), []int32{2}},
		{"jsonb as text", filter("jb", kalla.OpEq, `[1, 2]`), []int32{2}},
		{"bytea", filter("b", kalla.OpEq, `\x0102`), []int32{1}},
		{"time", filter("tm", kalla.OpLt, "12:00"), []int32{2}},
		{"interval as text", filter("iv", kalla.OpEq, "2 hours"), nil},
		{"interval text", filter("iv", kalla.OpEq, "02:00:00"), []int32{2}},
		{"float", filter("f", kalla.OpGt, json.Number("0")), []int32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkIDs(t, src, 1, tc.want, tc.f)
		})
	}
}

func TestFilterErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedPayments(t, tb)
	src := tb.open(t, "payments")

	for _, tc := range []struct {
		name    string
		filters []kalla.Filter
		field   string
	}{
		{"missing column", []kalla.Filter{filter("name", kalla.OpEq, "x"), filter("nope", kalla.OpEq, "x")}, "filters[1].column"},
		{"empty column", []kalla.Filter{filter("", kalla.OpEq, "x")}, "filters[0].column"},
		{"bad op", []kalla.Filter{filter("name", "contains", "x")}, "filters[0].op"},
		{"null value", []kalla.Filter{{Column: "name", Op: kalla.OpEq, Value: []byte("null")}}, "filters[0].value"},
		{"between one value", []kalla.Filter{filter("id", kalla.OpBetween, []int{1})}, "filters[0].value"},
		{"not an integer", []kalla.Filter{filter("id", kalla.OpEq, "1; DROP TABLE payments")}, "filters[0].value"},
		{"not a date", []kalla.Filter{filter("name", kalla.OpEq, "x"), filter("booked", kalla.OpGt, "2024-13-45'")}, "filters[1].value"},
		{"not a number in a list", []kalla.Filter{filter("amount", kalla.OpIn, []string{"1", "two"})}, "filters[0].value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scanAll(t, src, 1, tc.filters...)
			var v *kalla.ValidationError
			if !asValidation(err, &v) || v.Field != tc.field {
				t.Fatalf("got %v, want a validation error on %s", err, tc.field)
			}
		})
	}
	// The source still scans after a rejected filter.
	sink, err := scanAll(t, src, 1, filter("id", kalla.OpEq, json.Number("1")))
	if err != nil || len(sink.rows) != 1 {
		t.Fatalf("scan after errors: %d rows, %v", len(sink.rows), err)
	}
}

// checkIDs scans src with filters and checks that the rows read are those
// whose first column, an int4 id, is in want (sorted).
func checkIDs(t *testing.T, src *Source, parallelism int, want []int32, filters ...kalla.Filter) {
	t.Helper()
	sink, err := scanAll(t, src, parallelism, filters...)
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	for _, r := range sink.rows {
		got = append(got, r[0].(int32))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got ids %v, want %v", got, want)
	}
}
