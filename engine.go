package kalla

import "context"

// Engine runs reconciliations. Each job gets its own Session, so concurrent
// jobs never see each other's tables.
type Engine interface {
	NewSession(ctx context.Context) (Session, error)
}

// Session is one job's workspace in the engine. Its methods are called in
// order: CheckSQL, Attach (both sources), QueryColumns, Load (both sources),
// Reconcile; Close always.
type Session interface {
	// CheckSQL parses sql without binding it, so a syntax error is reported
	// before any source is read. The error carries the parser's message.
	CheckSQL(ctx context.Context, sql string) error
	// Attach declares alias as a table with src's columns (after filters)
	// and returns them; no rows are read yet. A filter naming a missing
	// column is a *ValidationError.
	Attach(ctx context.Context, alias string, src Source, filters []Filter) ([]Column, error)
	// QueryColumns binds sql against the attached tables without running it
	// and returns its result columns.
	QueryColumns(ctx context.Context, sql string) ([]Column, error)
	// Load reads the rows of alias; progress, if not nil, is called with the
	// number of rows read so far. It returns the row count.
	Load(ctx context.Context, alias string, progress func(rows int64)) (int64, error)
	// Reconcile runs the match and writes MatchedFile, UnmatchedLeftFile
	// and UnmatchedRightFile into the local folder dir.
	Reconcile(ctx context.Context, spec MatchSpec, dir string, progress func(Progress)) (Counts, error)
	Close() error
}

// MatchSpec is what Reconcile needs: the query, and how its result columns
// identify the source rows it matched.
type MatchSpec struct {
	SQL         string
	Left, Right KeyMapping
}

// KeyMapping ties a source's primary-key columns to the match result columns
// that carry them.
type KeyMapping struct {
	Alias         string
	SourceColumns []string
	ResultColumns []string
}

// Counts are the sizes of the three results.
type Counts struct {
	Matched, UnmatchedLeft, UnmatchedRight int64
}
