package conformance

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/postgres"
)

// rightCSV is the right-hand side of the conformance jobs: one row that
// matches nothing.
var rightCSV string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kalla-conformance-")
	if err != nil {
		panic(err)
	}
	kallatest.AtExit(func() { os.RemoveAll(dir) })
	rightCSV = filepath.Join(dir, "right.csv")
	if err := os.WriteFile(rightCSV, []byte("rid\n-1\n"), 0o644); err != nil {
		panic(err)
	}
	kallatest.Main(m)
}

// newRunner wires the real engine and adapters the way cmd/kallad does.
func newRunner(t *testing.T) *kalla.Runner {
	t.Helper()
	return wire(t, kallatest.TestLogger(t, slog.LevelInfo), func(sources *kalla.Registry[kalla.Source]) {
		sources.Register(file.OpenSource, "file")
		sources.Register(postgres.Open, "postgres", "postgresql")
	})
}

// wire returns a Runner on the real engine (small CSV splits), the sources
// register adds and local outputs, logging to logger.
func wire(t *testing.T, logger *slog.Logger, register func(*kalla.Registry[kalla.Source])) *kalla.Runner {
	t.Helper()
	eng, err := duckdb.Open(duckdb.Config{Threads: 2, MinCSVSplitBytes: minCSVSplitBytes})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	sources := kalla.NewSourceRegistry()
	register(sources)
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	return &kalla.Runner{Engine: eng, Sources: sources, Outputs: outputs, Logger: logger}
}

// pgRows is ducktest.Rows for Postgres: every column is cast to text by q.
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
		out = append(out, kallatest.RowText(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func parquetOf(path string) string { return fmt.Sprintf("read_parquet('%s')", path) }
