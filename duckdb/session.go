package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// Session is one job's workspace: a database of its own (see NewSession)
// with a schema holding a table per source alias, and a connection whose
// search_path resolves the aliases in match_sql.
type Session struct {
	engine    *Engine
	connector *duckdb.Connector
	db        *sql.DB
	conn      *sql.Conn
	schema    string
	dir       string
	tables    map[string]*table
	// folders are the folders the session's database may write to
	// (absolute, ending in a separator); outs counts the folders outDir
	// made.
	folders []string
	outs    int
	// carry holds the sides of a carry-over job (carryover.go).
	carry map[string]*carrySide
	// sourceRows holds the sources' row counts during Reconcile
	// (reconcile.go rowsOf).
	sourceRows map[string]int64
}

var _ kalla.Session = (*Session)(nil)

// table is an attached source.
type table struct {
	alias   string
	src     kalla.Source
	filters []kalla.Filter
	// files or rows is how the source said it is read (kalla.Reading);
	// both nil for staged files and a cut of CSV files.
	files *kalla.FileSource
	rows  kalla.RowReader
	cols  []kalla.Column
	// types are the DuckDB column types, which may be richer than cols
	// says for file sources (LIST, HUGEINT, ...).
	types []string
	// from is the DuckDB table expression that reads a file source,
	// including the column types Kalla decided; empty for row sources.
	from  string
	where string
	// csv is how a CSV source's columns were typed; nil for other sources.
	csv *csvTyping
	// view is set for Parquet files, which DuckDB reads as fast as its own
	// tables: staging them into a table cost more than the whole match
	// (2.5 s of 4.5 s at 1M invoices), so they are read where they are.
	view bool
}

func (s *Session) qualified(alias string) string {
	return quoteIdent(s.schema) + "." + quoteIdent(alias)
}

// positionOf turns the parser's 0-based byte offset into the 1-based
// character position people count in, with the text found there.
func positionOf(query, position string) string {
	var pos int
	if _, err := fmt.Sscan(position, &pos); err != nil || pos < 0 || pos > len(query) {
		return ""
	}
	end := min(pos+20, len(query))
	return fmt.Sprintf(" at character %d: %q", len([]rune(query[:pos]))+1, query[pos:end])
}

// Attach declares alias with the columns of split of src: it asks src how
// the engine reads the split (Source.Read) and declares files (a view over
// Parquet, a typed CSV reader, or the engine's own cut of CSV files) or a
// table the rows are appended to.
func (s *Session) Attach(ctx context.Context, alias string, src kalla.Source, split kalla.SourceSplit, filters []kalla.Filter) ([]kalla.Column, error) {
	t := &table{alias: alias, src: src, filters: filters}
	dir := fmt.Sprintf("%s/fetch-%s", s.dir, alias)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create fetch dir: %w", err)
	}
	rd, err := src.Read(ctx, split, dir)
	if err != nil {
		return nil, err
	}
	switch {
	case rd.Files != nil && split.Cut != nil:
		err = s.describeCut(ctx, t, split)
	case rd.Files != nil:
		t.files = rd.Files
		err = s.describeFiles(ctx, t, rd.Files)
	case rd.Rows != nil:
		t.rows = rd.Rows
		t.cols, err = rd.Rows.Columns(ctx)
		for _, c := range t.cols {
			typ := c.Type.SQL()
			if c.Type.Kind == kalla.TypeJSON {
				// DuckDB's Go setters re-encode values of JSON columns as JSON
				// strings; JSON text is staged as VARCHAR and retyped
				// after the load, which keeps it byte for byte.
				typ = "VARCHAR"
			}
			t.types = append(t.types, typ)
		}
	default:
		err = fmt.Errorf("source %T gave neither files nor rows", src)
	}
	if err != nil {
		return nil, err
	}
	if err := s.declare(ctx, t); err != nil {
		return nil, err
	}
	return t.cols, nil
}

// ReadsRows implements distributed.Session.
func (s *Session) ReadsRows(alias string) bool {
	t, ok := s.tables[alias]
	return ok && t.rows != nil
}

// declare checks t's filters and creates its table (or view).
func (s *Session) declare(ctx context.Context, t *table) error {
	var err error
	if t.where, err = s.filterSQL(ctx, t); err != nil {
		return err
	}
	alias := t.alias
	defs := make([]string, len(t.cols))
	for i, c := range t.cols {
		defs[i] = quoteIdent(c.Name) + " " + t.types[i]
	}
	create := fmt.Sprintf("CREATE TABLE %s (%s)", s.qualified(alias), strings.Join(defs, ", "))
	if t.view {
		create = fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s%s", s.qualified(alias), t.from, t.where)
	}
	if _, err := s.conn.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create table for %q: %w", alias, err)
	}
	s.tables[alias] = t
	return nil
}

// QueryColumns binds query without running it.
func (s *Session) QueryColumns(ctx context.Context, query string) ([]kalla.Column, error) {
	cols, _, err := s.describe(ctx, query)
	return cols, err
}

// describe returns the result columns of query, and their DuckDB types,
// without running it.
func (s *Session) describe(ctx context.Context, query string) ([]kalla.Column, []string, error) {
	rows, err := s.conn.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return nil, nil, cleanError(err)
	}
	defer rows.Close()
	var cols []kalla.Column
	var types []string
	for rows.Next() {
		var name, typ string
		var rest [4]sql.NullString
		if err := rows.Scan(&name, &typ, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			return nil, nil, err
		}
		cols = append(cols, kalla.Column{Name: name, Type: parseType(typ)})
		types = append(types, typ)
	}
	return cols, types, rows.Err()
}

// Load reads the rows of alias into its table.
func (s *Session) Load(ctx context.Context, alias string, progress func(int64)) (int64, error) {
	t, ok := s.tables[alias]
	if !ok {
		return 0, fmt.Errorf("source %q is not attached", alias)
	}
	alias = t.alias // today's rows, renamed by a carry-over (carryover.go)
	if t.view {
		return s.count(ctx, s.qualified(alias))
	}
	if t.from != "" {
		return s.loadCSV(ctx, t)
	}
	if t.rows == nil {
		return 0, fmt.Errorf("source %q has no rows to load", alias)
	}
	// A connection of this load's own: the Runner loads row sources
	// concurrently, and statements of two loads must not share one.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	sink := &appendSink{db: s.db, schema: s.schema, table: alias, cols: t.cols, qualified: s.qualified(alias)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if progress != nil {
					progress(sink.rows.Load())
				}
			}
		}
	}()
	par := parallelism(ctx, conn)
	err = t.rows.Scan(ctx, t.filters, par, sink)
	close(stop)
	<-done
	if err != nil {
		return 0, err
	}
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+s.qualified(alias)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows: %w", err)
	}
	if staged := sink.rows.Load(); n != staged {
		return 0, fmt.Errorf("staged %d rows of %q but the table holds %d", staged, alias, n)
	}
	for _, c := range t.cols {
		if c.Type.Kind == kalla.TypeJSON {
			alter := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE JSON", s.qualified(alias), quoteIdent(c.Name))
			if _, err := conn.ExecContext(ctx, alter); err != nil {
				return 0, fmt.Errorf("column %q holds invalid JSON: %w", c.Name, cleanError(err))
			}
		}
	}
	return n, nil
}

// parallelism is the number of streams a row source is read in: one per
// engine thread.
func parallelism(ctx context.Context, conn *sql.Conn) int {
	var threads int
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('threads')").Scan(&threads); err != nil || threads < 1 {
		return 1
	}
	return threads
}

// Close closes the job's database, which drops its tables, and removes its
// folder.
func (s *Session) Close() error {
	var err error
	if s.conn != nil {
		err = s.conn.Close()
		s.conn = nil
	}
	if s.db != nil {
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
		s.db = nil
	}
	if s.connector != nil {
		s.connector.Close()
		s.connector = nil
	}
	os.RemoveAll(s.dir)
	return err
}

// cleanError strips the driver's prefixes noise-free enough for users while
// keeping DuckDB's message (which names the column, line and position).
func cleanError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errors.New(strings.TrimSpace(err.Error()))
}
