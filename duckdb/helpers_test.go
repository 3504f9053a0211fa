package duckdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
)

// bundle is what a test needs: a runner on a fresh engine and a folder.
type bundle struct {
	runner *kalla.Runner
	dir    string
}

func setup(t *testing.T, cfg duckdb.Config) *bundle {
	t.Helper()
	eng, err := duckdb.Open(cfg)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	sources := kalla.NewRegistry()
	sources.Register(file.OpenSource, "file")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	logger := slog.New(slog.NewTextHandler(tWriter{t}, nil))
	return &bundle{
		runner: &kalla.Runner{Engine: eng, Sources: sources, Outputs: outputs, Parallelism: 2, Logger: logger},
		dir:    t.TempDir(),
	}
}

// write creates a file in the bundle's folder and returns its path.
func (b *bundle) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// job builds a two-source job with the usual aliases.
func (b *bundle) job(matchSQL, left, right string, leftKeys, rightKeys []string) *kalla.Job {
	return &kalla.Job{
		MatchSQL: matchSQL,
		Sources: []kalla.SourceSpec{
			{Alias: "left_src", URI: left},
			{Alias: "right_src", URI: right},
		},
		OutputPath:  filepath.Join(b.dir, "out"),
		PrimaryKeys: map[string][]string{"left_src": leftKeys, "right_src": rightKeys},
	}
}

func (b *bundle) run(t *testing.T, job *kalla.Job) *kalla.Result {
	t.Helper()
	res, err := b.runner.Run(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("run job: %v", err)
	}
	return res
}

// query runs sql in a scratch DuckDB and returns the rows as strings.
func query(t *testing.T, q string, args ...any) []string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q, args...)
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
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parquet returns the rows of a result file, sorted, each as "a|b|c".
func parquet(t *testing.T, path string, columns string) []string {
	t.Helper()
	rows := query(t, fmt.Sprintf("SELECT COLUMNS(*)::VARCHAR FROM (SELECT %s FROM read_parquet('%s'))", columns, path))
	sort.Strings(rows)
	return rows
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// tWriter sends logs to t.Log, so they show only for failing tests.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
