package parquet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pq "github.com/parquet-go/parquet-go"

	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
	"github.com/kalla-dev/kalla/internal/parquet"
)

func TestMain(m *testing.M) { kallatest.Main(m) }

// rowsSQL returns rows [from, to) of every kind a result file holds:
// exact decimals, text with NULLs, quotes and unicode, dates, instants,
// UUIDs, booleans, nested values, and low-cardinality text that DuckDB
// dictionary-encodes.
func rowsSQL(from, to int) string {
	return strings.NewReplacer("{from}", fmt.Sprint(from), "{to}", fmt.Sprint(to)).Replace(`SELECT i AS id,
	(i * 1.25)::DECIMAL(18,2) AS amount,
	(i / 7)::DECIMAL(38,10) AS wide,
	CASE WHEN i % 5 = 0 THEN NULL ELSE 'row ' || i || ' "q" ✓' END AS note,
	'cur' || (i % 3) AS currency,
	DATE '2026-01-01' + (i % 400)::INT AS due,
	TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i) AS at,
	i % 2 = 0 AS flag,
	md5(i::VARCHAR)::UUID AS uid,
	[i, i + 1] AS pair,
	{'k': i % 2, 'v': 'x' || i} AS kv
FROM range({from}, {to}) t(i)`)
}

// write writes rows [from, to) to a Parquet file in row groups of
// groupSize rows and returns its path.
func write(t *testing.T, dir, name string, from, to, groupSize int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	ducktest.Query(t, fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE %d)", rowsSQL(from, to), path, groupSize))
	return path
}

func TestConcatEqualsUnionOfParts(t *testing.T) {
	dir := t.TempDir()
	parts := []string{
		write(t, dir, "a.parquet", 0, 5000, 1000), // several row groups
		write(t, dir, "empty.parquet", 0, 0, 1000),
		write(t, dir, "b.parquet", 5000, 5001, 1000), // one row
		write(t, dir, "c.parquet", 5001, 40000, 100000),
	}
	dst := filepath.Join(dir, "all.parquet")
	n, err := parquet.Concat(context.Background(), dst, parts)
	if err != nil {
		t.Fatal(err)
	}
	if n != 40000 {
		t.Fatalf("concat returned %d rows, want 40000", n)
	}
	list := "['" + strings.Join(parts, "', '") + "']"
	// Same columns with the same types, and the same rows, in order.
	if got, want := ducktest.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '"+dst+"')"),
		ducktest.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '"+parts[0]+"')"); !equal(got, want) {
		t.Fatalf("schema %v, want %v", got, want)
	}
	all := ducktest.Query(t, "SELECT COLUMNS(*)::VARCHAR FROM read_parquet('"+dst+"', file_row_number = true) ORDER BY file_row_number")
	want := ducktest.Query(t, "SELECT COLUMNS(*)::VARCHAR FROM (SELECT *, id AS file_row_number FROM ("+rowsSQL(0, 40000)+")) ORDER BY id")
	if !equal(all, want) {
		t.Fatalf("concatenated rows differ from the parts (%d vs %d rows)", len(all), len(want))
	}
	diff := ducktest.Query(t, "SELECT count(*) FROM (SELECT * FROM '"+dst+"' EXCEPT ALL SELECT * FROM read_parquet("+list+"))")
	if diff[0] != "0" {
		t.Fatalf("%s rows of the result are not in the parts", diff[0])
	}

	// A second, independent reader (parquet-go) checks every page offset.
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("parquet-go cannot open the result: %v", err)
	}
	var read int64
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		buf := make([]pq.Row, 512)
		for {
			k, err := rows.ReadRows(buf)
			read += int64(k)
			if err != nil {
				break
			}
		}
		rows.Close()
	}
	if read != 40000 || pf.NumRows() != 40000 {
		t.Fatalf("parquet-go read %d rows (footer says %d), want 40000", read, pf.NumRows())
	}
}

func TestConcatOfEmptyParts(t *testing.T) {
	dir := t.TempDir()
	parts := []string{write(t, dir, "a.parquet", 0, 0, 10), write(t, dir, "b.parquet", 0, 0, 10)}
	dst := filepath.Join(dir, "all.parquet")
	n, err := parquet.Concat(context.Background(), dst, parts)
	if err != nil || n != 0 {
		t.Fatalf("concat: %d rows, %v", n, err)
	}
	if got := ducktest.Query(t, "SELECT count(*), count(DISTINCT typeof(amount)) FROM '"+dst+"'"); got[0] != "0|0" {
		t.Fatalf("got %v", got)
	}
	if got := ducktest.Query(t, "SELECT column_type FROM (DESCRIBE SELECT amount FROM '"+dst+"')"); got[0] != "DECIMAL(18,2)" {
		t.Fatalf("amount is %v", got)
	}
}

func TestConcatErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.parquet", 0, 10, 10)
	other := filepath.Join(dir, "other.parquet")
	ducktest.Query(t, "COPY (SELECT 1 AS id) TO '"+other+"' (FORMAT parquet)")
	text := filepath.Join(dir, "text.parquet")
	if err := os.WriteFile(text, []byte("id,amount\n1,2.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		parts []string
		want  string
	}{
		{"schema", []string{good, other}, "other.parquet: its schema differs"},
		{"not parquet", []string{good, text}, "text.parquet: not a Parquet file"},
		{"missing", []string{good, filepath.Join(dir, "nope.parquet")}, "nope.parquet"},
		{"none", nil, "no source files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(dir, "out-"+tc.name+".parquet")
			_, err := parquet.Concat(context.Background(), dst, tc.parts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("a failed concat left %s behind", dst)
			}
		})
	}
}

func TestConcatStopsWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := parquet.Concat(ctx, filepath.Join(dir, "all.parquet"), []string{write(t, dir, "a.parquet", 0, 10, 10)})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("error %v, want context canceled", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
