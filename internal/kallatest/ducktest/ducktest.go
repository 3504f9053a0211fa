// Package ducktest reads query results from a scratch DuckDB for tests, as
// text rows that compare with kallatest.SameRows. It is apart from
// kallatest so that test binaries which never read DuckDB need not link it.
package ducktest

import (
	"database/sql"
	"sort"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Query runs q with args in a scratch in-memory DuckDB whose time zone
// is UTC, and returns its rows in the order DuckDB gives them, each as
// kallatest.RowText of its columns. It fails t on any error.
func Query(t testing.TB, q string, args ...any) []string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, kallatest.RowText(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Rows runs q in a scratch DuckDB (see Query) with every column
// cast to VARCHAR by DuckDB, and returns the rows sorted, each as "a|b|c".
func Rows(t testing.TB, q string) []string {
	t.Helper()
	rows := Query(t, "SELECT COLUMNS(*)::VARCHAR FROM ("+q+")")
	sort.Strings(rows)
	return rows
}
