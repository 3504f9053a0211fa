package duckdb

import (
	"database/sql"
	"sync/atomic"

	"github.com/kalla-dev/kalla"
)

// appendSink receives a kalla.RowReader's rows into a staged table. Each parallel
// stream gets its own Appender on its own connection; DuckDB merges
// concurrent appends into one table. (An Arrow record-batch writer, which
// needs the duckdb_arrow build tag, measured no faster end to end from
// Postgres at 1M rows: the Appender's 1.2 µs a row is not the bottleneck
// while the Postgres server shares the CPUs.) A stream that can send CSV
// takes the cheaper path of csvsink.go instead: half the client CPU.
type appendSink struct {
	db     *sql.DB
	schema string
	table  string
	cols   []kalla.Column
	// qualified names the table in SQL; types are its DuckDB column
	// types, and dir a folder of the session for staging files (the CSV
	// path, csvsink.go).
	qualified string
	types     []string
	dir       string
	// rows counts the rows written, for progress reports.
	rows atomic.Int64
}

var _ kalla.RowSink = (*appendSink)(nil)
