package duckdb_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// browseFile writes a result-like Parquet file of 2,500 rows (more than
// one row group's worth of pages, NULLs, exact decimals, reasons) in a
// folder of its own and returns the folder, the file and a Browser.
func browseFile(t *testing.T) (string, string, *duckdb.Browser) {
	t.Helper()
	eng, err := duckdb.Open(duckdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	b := duckdb.NewBrowser(eng)
	t.Cleanup(func() { b.Close() })
	dir := t.TempDir()
	path := filepath.Join(dir, "unmatched_left.parquet")
	ducktest.Query(t, fmt.Sprintf(`COPY (SELECT 'INV-' || lpad(i::VARCHAR, 5, '0') AS invoice_id,
		CASE WHEN i %% 7 = 0 THEN NULL ELSE (i * 1.01)::DECIMAL(18,2) END AS amount,
		['no_candidate', 'amount_mismatch', 'date_out_of_window'][i %% 3 + 1] AS _kalla_reason
		FROM range(2500) t(i)) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE 1000)`, path))
	return dir, path, b
}

func pageText(p *kalla.RowPage) []string {
	out := make([]string, len(p.Rows))
	for i, r := range p.Rows {
		vals := make([]sql.NullString, len(r))
		for j, v := range r {
			if v != nil {
				vals[j] = sql.NullString{String: *v, Valid: true}
			}
		}
		out[i] = kallatest.RowText(vals)
	}
	return out
}

// Pages, filters, key searches and the CSV hold exactly the rows the same
// query selects in a plain DuckDB, in file order, values as DuckDB writes
// them (a DECIMAL keeps its digits).
func TestBrowserRowsEqualSQL(t *testing.T) {
	t.Parallel()
	dir, path, b := browseFile(t)
	ctx := context.Background()
	all := fmt.Sprintf("SELECT COLUMNS(*)::VARCHAR FROM read_parquet('%s')", path)
	for _, tc := range []struct {
		name  string
		q     kalla.RowQuery
		where string
	}{
		{"first page", kalla.RowQuery{Limit: 100}, ""},
		{"a page across row groups", kalla.RowQuery{Offset: 950, Limit: 100}, ""},
		{"the last, short page", kalla.RowQuery{Offset: 2400, Limit: 200}, ""},
		{"a reason", kalla.RowQuery{Equal: map[string]string{"_kalla_reason": "amount_mismatch"}, Offset: 100, Limit: 100}, " WHERE _kalla_reason = 'amount_mismatch'"},
		{"a key", kalla.RowQuery{Search: "INV-01234", SearchColumns: []string{"invoice_id", "no_such_key"}, Limit: 100}, " WHERE invoice_id = 'INV-01234'"},
		{"an amount, in any column", kalla.RowQuery{Search: "12.12", Limit: 100}, " WHERE amount::VARCHAR = '12.12'"},
	} {
		page, err := b.Rows(ctx, dir, "unmatched_left.parquet", tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rows := ducktest.Query(t, all+tc.where)
		if page.Total != int64(len(rows)) {
			t.Errorf("%s: total %d, DuckDB counts %d", tc.name, page.Total, len(rows))
		}
		want := rows[min(int(tc.q.Offset), len(rows)):min(int(tc.q.Offset+tc.q.Limit), len(rows))]
		kallatest.SameRows(t, tc.name, pageText(page), want)
	}

	page, err := b.Rows(ctx, dir, "unmatched_left.parquet", kalla.RowQuery{Limit: 1, Facets: []string{"_kalla_reason", "_kalla_rule"}})
	if err != nil {
		t.Fatal(err)
	}
	want := ducktest.Query(t, fmt.Sprintf("SELECT _kalla_reason FROM read_parquet('%s') GROUP BY ALL ORDER BY count(*) DESC, 1", path))
	if !slices.Equal(page.Facets["_kalla_reason"], want) || page.Facets["_kalla_rule"] != nil {
		t.Errorf("facets %v, want the reasons %v and no rule", page.Facets, want)
	}

	var buf bytes.Buffer
	q := kalla.RowQuery{Equal: map[string]string{"_kalla_reason": "no_candidate"}}
	if err := b.WriteCSV(ctx, dir, "unmatched_left.parquet", q, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs[1:] {
		vals := make([]sql.NullString, len(r))
		for i, v := range r {
			vals[i] = sql.NullString{String: v, Valid: v != ""}
		}
		got = append(got, kallatest.RowText(vals))
	}
	if !slices.Equal(recs[0], []string{"invoice_id", "amount", "_kalla_reason"}) {
		t.Errorf("CSV header %v", recs[0])
	}
	kallatest.SameRows(t, "CSV", got, ducktest.Query(t, all+" WHERE _kalla_reason = 'no_candidate'"))
}

// A filter on a column the file lacks names it; a name that is not a
// Parquet file of the folder is refused.
func TestBrowserRefuses(t *testing.T) {
	t.Parallel()
	dir, _, b := browseFile(t)
	ctx := context.Background()
	_, err := b.Rows(ctx, dir, "unmatched_left.parquet", kalla.RowQuery{Equal: map[string]string{"_kalla_rule": "r1"}, Limit: 10})
	var v *kalla.ValidationError
	if !errors.As(err, &v) || v.Field != "_kalla_rule" {
		t.Errorf("a filter on a missing column: %v, want a validation error naming _kalla_rule", err)
	}
	for _, name := range []string{"../unmatched_left.parquet", "summary.json", ""} {
		if _, err := b.Rows(ctx, dir, name, kalla.RowQuery{Limit: 1}); !errors.As(err, &v) {
			t.Errorf("file %q: %v, want a validation error", name, err)
		}
	}
}
