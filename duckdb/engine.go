// Package duckdb is Kalla's engine: embedded DuckDB databases that stage
// the sources of each job, run its match query and write the results as
// Parquet. Each job session gets a database of its own, locked down (see
// lockdown.go), so no job can see another's tables or files; --memory-limit
// is divided among the sessions that run at once, and DuckDB spills to
// --temp-dir beyond a session's share.
package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/tempdir"
)

// Config bounds the engine's resources.
type Config struct {
	// MemoryLimit bounds the memory of the engine's sessions together
	// ("4GB", or "75%" of the machine's RAM); empty means DuckDB's default,
	// 80% of RAM. Each session gets MemoryLimit / MaxSessions.
	MemoryLimit string
	// MaxSessions is how many sessions the caller runs at once (a
	// scheduler's --max-jobs, an executor's --max-tasks); 0 means 1.
	MaxSessions int
	// TempDir is where DuckDB spills and sources are fetched to; empty means
	// a fresh folder under the system temp dir, removed on Close.
	TempDir string
	// Threads is DuckDB's worker thread count; 0 means one per CPU.
	Threads int
	// MaxTempSize is DuckDB's max_temp_directory_size ("20GB") for each
	// session: a job that would spill more fails. Empty keeps DuckDB's
	// default (90% of the free disk space).
	MaxTempSize string
	// MinCSVSplitBytes is the smallest share of a local CSV source given a
	// stage task of its own when a cluster job splits it; 0 means
	// defaultMinSplitBytes (8 MB). The multi-process tests lower it to split
	// small files. kallad sets it from --csv-min-split-bytes (env
	// KALLA_CSV_MIN_SPLIT_BYTES).
	MinCSVSplitBytes int64
	// CSVSampleRows is how many rows at the start of a CSV source type its
	// numeric-looking columns before staging checks every value against
	// them; 0 means defaultCSVSampleRows. Tests lower it.
	CSVSampleRows int64
	Logger        *slog.Logger
}

// Engine is a kalla.Engine on embedded, in-memory DuckDB databases: one
// per session, and one that only parses match_sql.
type Engine struct {
	// settings are applied to every session's database before it is
	// locked down.
	settings []string
	// parser parses match_sql for the sandbox; it holds no data and runs
	// no query of a job.
	parser    *sql.DB
	connector *duckdb.Connector
	sandbox   *sandbox
	tempDir   string
	temp      *tempdir.Dir
	sessions  atomic.Int64
	logger    *slog.Logger
	// minSplitBytes is Config.MinCSVSplitBytes, or its default.
	minSplitBytes int64
	// csvSampleRows is Config.CSVSampleRows, or its default.
	csvSampleRows int64
	// unchecked turns the sandbox off, for tests that prove the lockdown
	// holds on its own.
	unchecked bool
}

var _ kalla.Engine = (*Engine)(nil)

// Open starts the engine.
func Open(cfg Config) (*Engine, error) {
	e := &Engine{logger: cfg.Logger, minSplitBytes: cfg.MinCSVSplitBytes}
	if e.minSplitBytes <= 0 {
		e.minSplitBytes = defaultMinSplitBytes
	}
	if e.csvSampleRows = cfg.CSVSampleRows; e.csvSampleRows <= 0 {
		e.csvSampleRows = defaultCSVSampleRows
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	// A folder of our own, locked while we live; the folders of processes
	// killed before removing theirs go first.
	temp, err := tempdir.Create(cfg.TempDir, e.logger)
	if err != nil {
		return nil, err
	}
	e.tempDir, e.temp = temp.Path, temp
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	settings := []string{
		fmt.Sprintf("SET temp_directory = %s", quoteLiteral(filepath.Join(e.tempDir, "spill"))),
		fmt.Sprintf("SET threads = %d", threads),
		// Results are sets: not keeping insertion order lets DuckDB stream
		// large COPY and CREATE TABLE AS without buffering.
		"SET preserve_insertion_order = false",
	}
	limit, err := sessionMemory(cfg.MemoryLimit, cfg.MaxSessions)
	if err != nil {
		e.Close()
		return nil, err
	}
	if limit != "" {
		settings = append(settings, fmt.Sprintf("SET memory_limit = %s", quoteLiteral(limit)))
	}
	if cfg.MaxTempSize != "" {
		settings = append(settings, fmt.Sprintf("SET max_temp_directory_size = %s", quoteLiteral(cfg.MaxTempSize)))
	}
	e.settings = settings
	// The parser database takes the same settings, which checks them once
	// here rather than at each job's start, and is locked down like a
	// session with no folder allowed.
	connector, err := openDatabase(slices.Concat(settings, lockdown(nil)))
	if err != nil {
		e.Close()
		if strings.Contains(err.Error(), "memory_limit") {
			return nil, kalla.Invalid("memory-limit", "%q is not a memory size DuckDB accepts (e.g. 4GB, 512MB, 75%%): %v", cfg.MemoryLimit, err)
		}
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	e.connector = connector
	e.parser = sql.OpenDB(connector)
	if err := e.parser.Ping(); err != nil {
		e.Close()
		if strings.Contains(err.Error(), "memory_limit") {
			return nil, kalla.Invalid("memory-limit", "%q is not a memory size DuckDB accepts (e.g. 4GB, 512MB, 75%%): %v", cfg.MemoryLimit, err)
		}
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	if e.sandbox, err = newSandbox(context.Background(), e.parser); err != nil {
		e.Close()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return e, nil
}

// Dir is the engine's own temp folder: removed when the engine closes, or
// at the next start after a crash. Other scratch data of the process (the
// console's copies of S3 results) belongs below it.
func (e *Engine) Dir() string { return e.tempDir }

// CheckSQL implements kalla.Engine: it parses query with DuckDB's parser
// only (nothing is bound or run) and applies the sandbox, so a syntax error
// is reported with its position and a query reaching outside the job is
// refused naming the table or function, before any source is read.
func (e *Engine) CheckSQL(ctx context.Context, query string, aliases []string) error {
	if e.unchecked {
		return nil
	}
	return e.sandbox.check(ctx, e.parser, query, aliases)
}

// Close shuts the database down and removes the engine's temp folder.
func (e *Engine) Close() error {
	var err error
	if e.parser != nil {
		err = e.parser.Close()
	}
	if e.connector != nil {
		e.connector.Close()
	}
	if e.temp != nil {
		e.temp.Remove()
	}
	return err
}

// quoteIdent quotes a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
