package duckdb_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
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
	sources := kalla.NewSourceRegistry()
	sources.Register(file.OpenSource, "file")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	logger := kallatest.TestLogger(t, slog.LevelInfo)
	return &bundle{
		runner: &kalla.Runner{Engine: eng, Sources: sources, Outputs: outputs, Logger: logger},
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

// parquet returns the rows of a result file, sorted, each as "a|b|c".
func parquet(t *testing.T, path string, columns string) []string {
	t.Helper()
	return ducktest.Rows(t, fmt.Sprintf("SELECT %s FROM read_parquet('%s')", columns, path))
}
