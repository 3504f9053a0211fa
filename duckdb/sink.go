package duckdb

import (
	"database/sql"
	"sync/atomic"

	"github.com/kalla-dev/kalla"
)

// appendSink receives a kalla.RowReader's rows into a staged table. Each
// parallel stream gets a writer of its own on its own connection, which
// gathers the rows in Go columns and loads them a batch at a time into
// DuckDB's data chunks (chunkwriter.go); DuckDB merges the streams'
// inserts into one table. Measured at 5M rows from Postgres, the
// alternatives cost more CPU: DuckDB's Appender (its per-value SetValue
// through any, then duckdb_append_data_chunk) about 4 CPU-s more per job;
// COPY (FORMAT csv) into files read by read_csv about the same on the
// client and 2 CPU-s more on the server (docs/benchmarks.md). An Arrow
// record-batch writer, which needs the duckdb_arrow build tag, measured no
// faster than the Appender.
type appendSink struct {
	db     *sql.DB
	schema string
	table  string
	cols   []kalla.Column
	// qualified names the table in SQL.
	qualified string
	// rows counts the rows written, for progress reports.
	rows atomic.Int64
}

var _ kalla.RowSink = (*appendSink)(nil)
