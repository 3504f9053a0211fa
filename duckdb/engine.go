// Package duckdb is Kalla's engine: an embedded DuckDB database that stages
// the sources of each job, runs its match query and writes the results as
// Parquet. One database serves every job of the process, so --memory-limit
// bounds them all together and DuckDB spills to --temp-dir beyond it.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/tempdir"
)

// Config bounds the engine's resources.
type Config struct {
	// MemoryLimit is DuckDB's memory_limit ("4GB", "75%"); empty keeps
	// DuckDB's default (80% of RAM).
	MemoryLimit string
	// TempDir is where DuckDB spills and sources are fetched to; empty means
	// a fresh folder under the system temp dir, removed on Close.
	TempDir string
	// Threads is DuckDB's worker thread count; 0 means one per CPU.
	Threads int
	// MaxTempSize is DuckDB's max_temp_directory_size ("20GB"): a job
	// that would spill more fails. Empty keeps DuckDB's default (90% of
	// the free disk space).
	MaxTempSize string
	Logger      *slog.Logger
}

// Engine is a kalla.Engine on an embedded, in-memory DuckDB database.
type Engine struct {
	db        *sql.DB
	connector *duckdb.Connector
	tempDir   string
	temp      *tempdir.Dir
	sessions  atomic.Int64
	logger    *slog.Logger
}

var _ kalla.Engine = (*Engine)(nil)

// Open starts the engine.
func Open(cfg Config) (*Engine, error) {
	e := &Engine{logger: cfg.Logger}
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
	if cfg.MemoryLimit != "" {
		settings = append(settings, fmt.Sprintf("SET memory_limit = %s", quoteLiteral(cfg.MemoryLimit)))
	}
	if cfg.MaxTempSize != "" {
		settings = append(settings, fmt.Sprintf("SET max_temp_directory_size = %s", quoteLiteral(cfg.MaxTempSize)))
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, s := range settings {
			if _, err := execer.ExecContext(context.Background(), s, nil); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		e.Close()
		if strings.Contains(err.Error(), "memory_limit") {
			return nil, kalla.Invalid("memory-limit", "%q is not a memory size DuckDB accepts (e.g. 4GB, 512MB, 75%%): %v", cfg.MemoryLimit, err)
		}
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	e.connector = connector
	e.db = sql.OpenDB(connector)
	if err := e.db.Ping(); err != nil {
		e.Close()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return e, nil
}

// Close shuts the database down and removes the engine's temp folder.
func (e *Engine) Close() error {
	var err error
	if e.db != nil {
		err = e.db.Close()
	}
	if e.connector != nil {
		e.connector.Close()
	}
	if e.temp != nil {
		e.temp.Remove()
	}
	return err
}

// NewSession gives a job its own schema and connection.
func (e *Engine) NewSession(ctx context.Context) (kalla.Session, error) {
	n := e.sessions.Add(1)
	s := &Session{
		engine: e,
		schema: fmt.Sprintf("kalla_job_%d", n),
		tables: map[string]*table{},
		dir:    filepath.Join(e.tempDir, fmt.Sprintf("job-%d", n)),
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	for _, stmt := range []string{
		"CREATE SCHEMA " + quoteIdent(s.schema),
		// tolerance_match(a, b, t) is abs(a - b) <= t: inclusive, and exact
		// for DECIMAL operands (money is never read as a binary float).
		fmt.Sprintf("CREATE MACRO %s.tolerance_match(a, b, t) AS abs(a - b) <= t", quoteIdent(s.schema)),
		fmt.Sprintf("SET search_path = %s", quoteLiteral(s.schema+",main")),
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			s.Close()
			return nil, fmt.Errorf("create session: %w", err)
		}
	}
	return s, nil
}

// quoteIdent quotes a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
