package duckdb_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// csvHeadRows clean rows start every file of the CSV typing tests: more
// than DuckDB's sniffer samples (20,480), so that it never sees the values
// after them and calls the column numeric, and more than the typing sample
// of the sampling engine, so that those values are checked while staging.
const csvHeadRows = 25_000

// sampledCSV is the typing sample of the engine under test, far smaller
// than the files; wholeCSV's sample holds every row, which types each
// column from all its values before any row is staged (the reference).
const (
	sampledCSV = 100
	wholeCSV   = 1 << 40
)

func intHead(i int) string { return fmt.Sprint(i%997 + 1) }
func decHead(i int) string { return fmt.Sprintf("%d.%02d", i%500, i%100) }

// withExponent is decHead with 1e5 in its second row.
func withExponent(i int) string {
	if i == 2 {
		return "1e5"
	}
	return decHead(i)
}

// quoteFirst quotes the first value of head: DuckDB's sniffer reads quotes
// as text when its sample holds none.
func quoteFirst(head func(int) string) func(int) string {
	return func(i int) string {
		if i == 1 {
			return `"` + head(i) + `"`
		}
		return head(i)
	}
}

// typedCSV writes a CSV of an id, a column v (head values, then tail, each
// a raw CSV field) and a column keep (1, or 0 on the rows of tail that
// dropped says), stages it in an engine whose typing sample is sample,
// with filters, and returns the type of v and every staged row as
// "id|v|keep", v as text.
func typedCSV(t *testing.T, sample int64, head func(int) string, tail []string, dropped map[int]bool, filters []kalla.Filter) (string, []string) {
	t.Helper()
	b := setup(t, duckdb.Config{CSVSampleRows: sample, Threads: 2})
	var sb strings.Builder
	sb.WriteString("id,v,keep\n")
	for i := 1; i <= csvHeadRows; i++ {
		fmt.Fprintf(&sb, "%d,%s,1\n", i, head(i))
	}
	for k, v := range tail {
		keep := 1
		if dropped[k] {
			keep = 0
		}
		fmt.Fprintf(&sb, "%d,%s,%d\n", csvHeadRows+1+k, v, keep)
	}
	left := b.write(t, "typed.csv", sb.String())
	right := b.write(t, "none.csv", "pid,id\n-1,-1\n")
	job := b.job("SELECT l.id AS left_src_id, r.pid AS right_src_pid FROM left_src l JOIN right_src r ON l.id = r.id",
		left, right, []string{"id"}, []string{"pid"})
	job.Sources[0].Filters = filters
	res := b.run(t, job)
	types := parquet(t, res.OutputPaths.UnmatchedLeft, "DISTINCT typeof(v)")
	if len(types) != 1 {
		t.Fatalf("v has types %v", types)
	}
	return types[0], parquet(t, res.OutputPaths.UnmatchedLeft, "id, coalesce(v::VARCHAR, 'NULL'), keep")
}

// A CSV column is typed from a sample of its first rows and every later
// value is checked as it is staged: whatever the values after the sample,
// the column gets the type, and every value the text, that typing it from
// all of its values gives. Text stays text byte for byte ("007", " 5",
// "+1.00"), money stays an exact DECIMAL, whose scale and precision grow
// with the values after the sample, and an empty string stays apart from a
// NULL.
func TestCSVTypedFromSampleAndChecked(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		head func(int) string
		tail []string
		typ  string
		want []string // v of the tail rows, as text
	}{
		{"integers throughout", intHead, []string{"42", "-7"}, "BIGINT", []string{"42", "-7"}},
		{"decimals throughout", decHead, []string{"9.99", "3.5", "4", "-0.50"}, "DECIMAL(18,2)", []string{"9.99", "3.50", "4.00", "-0.50"}},
		{"text after integers", intHead, []string{"abc"}, "VARCHAR", []string{"abc"}},
		{"leading zero after integers", intHead, []string{"007"}, "VARCHAR", []string{"007"}},
		{"space before an integer", intHead, []string{" 5"}, "VARCHAR", []string{" 5"}},
		{"decimal after integers", intHead, []string{"2.5"}, "DECIMAL(18,1)", []string{"2.5"}},
		{"19 digits after integers", intHead, []string{"1234567890123456789"}, "DECIMAL(38,0)", []string{"1234567890123456789"}},
		{"negative zero after integers", intHead, []string{"-0"}, "BIGINT", []string{"0"}},
		{"longer fraction after decimals", decHead, []string{"3.125"}, "DECIMAL(18,3)", []string{"3.125"}},
		{"17 integer digits after decimals", decHead, []string{"12345678901234567.5"}, "DECIMAL(38,2)", []string{"12345678901234567.50"}},
		{"quoted decimal after decimals", quoteFirst(decHead), []string{`"7.25"`}, "DECIMAL(18,2)", []string{"7.25"}},
		{"plus sign after decimals", decHead, []string{"+1.00"}, "VARCHAR", []string{"+1.00"}},
		{"point without digits after decimals", decHead, []string{"1."}, "VARCHAR", []string{"1."}},
		{"exponent after decimals", decHead, []string{"1e5"}, "VARCHAR", []string{"1e5"}},
		{"empty string and NULL after integers", quoteFirst(intHead), []string{`""`, ``}, "VARCHAR", []string{"", "NULL"}},
		{"NULL after integers", intHead, []string{``, "8"}, "BIGINT", []string{"NULL", "8"}},
		// The sniffer's DOUBLE stays DOUBLE only with more digits than a
		// DECIMAL holds; the sample (an exponent in it) says text, the
		// 40 digits after it say DOUBLE.
		{"40 digits after an exponent", withExponent, []string{"1234567890123456789012345678901234567890.5"}, "DOUBLE", []string{"1.2345678901234568e+39"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ, rows := typedCSV(t, sampledCSV, tc.head, tc.tail, nil, nil)
			wholeTyp, wholeRows := typedCSV(t, wholeCSV, tc.head, tc.tail, nil, nil)
			if typ != tc.typ || wholeTyp != tc.typ {
				t.Errorf("v typed %s from the sample, %s from every value; want %s", typ, wholeTyp, tc.typ)
			}
			kallatest.SameRows(t, "staged rows, sampled vs every value", rows, wholeRows)
			if len(rows) != csvHeadRows+len(tc.tail) {
				t.Fatalf("staged %d rows, want %d", len(rows), csvHeadRows+len(tc.tail))
			}
			var tail []string
			for k, v := range tc.want {
				tail = append(tail, fmt.Sprintf("%d|%s|1", csvHeadRows+1+k, v))
			}
			got := map[string]bool{}
			for _, r := range rows {
				got[r] = true
			}
			for _, r := range tail {
				if !got[r] {
					t.Errorf("row %q not staged", r)
				}
			}
			// The head rows keep their text when the column is text.
			if first := strings.Trim(tc.head(1), `"`); typ == "VARCHAR" && !got["1|"+first+"|1"] {
				t.Errorf("head row 1 (%q) not staged as text", first)
			}
		})
	}
}

// A value after the sample that a filter drops still types its column: the
// type comes from every value of the file, as when the filter keeps it.
func TestCSVFilteredRowsStillType(t *testing.T) {
	t.Parallel()
	keep := []kalla.Filter{{Column: "keep", Op: kalla.OpEq, Value: json.RawMessage(`1`)}}
	tail := []string{"007", "8"}
	dropped := map[int]bool{0: true}
	typ, rows := typedCSV(t, sampledCSV, intHead, tail, dropped, keep)
	wholeTyp, wholeRows := typedCSV(t, wholeCSV, intHead, tail, dropped, keep)
	if typ != "VARCHAR" || wholeTyp != "VARCHAR" {
		t.Errorf("v typed %s from the sample, %s from every value; want VARCHAR", typ, wholeTyp)
	}
	kallatest.SameRows(t, "staged rows, sampled vs every value", rows, wholeRows)
	if len(rows) != csvHeadRows+1 {
		t.Errorf("the filter kept %d rows, want %d", len(rows), csvHeadRows+1)
	}
}

// A glob of CSV files is typed from a sample at the start of its first
// file, and checked in all of them.
func TestCSVGlobCheckedInEveryFile(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{CSVSampleRows: sampledCSV, Threads: 2})
	var first strings.Builder
	first.WriteString("id,amount\n")
	for i := 1; i <= csvHeadRows; i++ {
		fmt.Fprintf(&first, "%d,%s\n", i, decHead(i))
	}
	b.write(t, "part-1.csv", first.String())
	b.write(t, "part-2.csv", "id,amount\n900001,1.005\n")
	right := b.write(t, "none.csv", "pid,id\n-1,-1\n")
	job := b.job("SELECT l.id AS left_src_id, r.pid AS right_src_pid FROM left_src l JOIN right_src r ON l.id = r.id",
		filepath.Join(b.dir, "part-*.csv"), right, []string{"id"}, []string{"pid"})
	res := b.run(t, job)
	got := ducktest.Rows(t, "SELECT typeof(amount), amount::VARCHAR FROM read_parquet('"+res.OutputPaths.UnmatchedLeft+"') WHERE id IN (1, 900001)")
	kallatest.SameRows(t, "amounts", got, []string{"DECIMAL(18,3)|1.005", "DECIMAL(18,3)|1.010"})
}

// A filter comparing a sampled column with a value its sampled type cannot
// hold is checked against the type from every value, as it always was: the
// text after the sample makes the column text, and the filter keeps its row.
func TestCSVFilterValueOutsideSampledType(t *testing.T) {
	t.Parallel()
	only := []kalla.Filter{{Column: "v", Op: kalla.OpEq, Value: json.RawMessage(`"A-1"`)}}
	tail := []string{"A-1", "12"}
	typ, rows := typedCSV(t, sampledCSV, intHead, tail, nil, only)
	wholeTyp, wholeRows := typedCSV(t, wholeCSV, intHead, tail, nil, only)
	if typ != "VARCHAR" || wholeTyp != "VARCHAR" {
		t.Errorf("v typed %s from the sample, %s from every value; want VARCHAR", typ, wholeTyp)
	}
	kallatest.SameRows(t, "staged rows", rows, []string{fmt.Sprintf("%d|A-1|1", csvHeadRows+1)})
	kallatest.SameRows(t, "staged rows from every value", wholeRows, rows)
}
