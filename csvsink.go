package kalla

import "context"

// CSVRowSink is a RowSink that can also take a stream's rows as CSV text,
// which the engine's own CSV reader parses: for a source that can send
// its rows as CSV (Postgres' COPY … (FORMAT csv)), cheaper than decoding
// every value in Go and handing it over one at a time.
type CSVRowSink interface {
	RowSink
	// NewCSVWriter returns a writer for one stream of rows of the sink's
	// columns, in order, as Postgres' COPY (FORMAT csv) writes them: comma,
	// double quotes, NULL an unquoted empty field, the empty string "",
	// dates and timestamps ISO, timestamps with time zone in UTC.
	NewCSVWriter(ctx context.Context) (CSVRowWriter, error)
}

// CSVRowWriter takes rows as CSV text. Nothing written is visible until
// Close returns nil.
type CSVRowWriter interface {
	// WriteRow takes one whole row, its line end included; row is only
	// valid until WriteRow returns.
	WriteRow(row []byte) error
	Close() error
}
