package conformance

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/postgres"
)

func TestMain(m *testing.M) { kallatest.Main(m) }

// newRunner wires the real engine and adapters the way cmd/kallad does.
func newRunner(t *testing.T) *kalla.Runner {
	t.Helper()
	eng, err := duckdb.Open(duckdb.Config{Threads: 2})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	sources := kalla.NewRegistry()
	sources.Register(file.OpenSource, "file")
	sources.Register(postgres.Open, "postgres", "postgresql")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	return &kalla.Runner{Engine: eng, Sources: sources, Outputs: outputs, Parallelism: 2,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// duckRows runs q in a scratch DuckDB; each row is its columns as text
// joined by "|", and the rows are sorted.
func duckRows(t *testing.T, q string) []string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT COLUMNS(*)::VARCHAR FROM (" + q + ")")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
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
		out = append(out, joinNull(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// pgRows is duckRows for Postgres: every column is cast to text by q.
func pgRows(t *testing.T, pool *pgxpool.Pool, q string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([]sql.NullString, len(raw))
		for i, r := range raw {
			vals[i] = sql.NullString{String: string(r), Valid: r != nil}
		}
		out = append(out, joinNull(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func joinNull(vals []sql.NullString) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = "NULL"
		if v.Valid {
			parts[i] = v.String
		}
	}
	return strings.Join(parts, "|")
}

func sameRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("%s: first difference at row %d:\n got  %q\n want %q", what, i, got[i], want[i])
			return
		}
	}
}

func parquetOf(path string) string { return fmt.Sprintf("read_parquet('%s')", path) }
