package kalla

import "context"

// ColumnRowSink is a RowSink that can also take a stream's rows value by
// value through typed setters, which the engine writes straight into its
// own column vectors: for a source that decodes its values itself
// (Postgres' binary COPY), nothing is boxed in an interface per value and
// the engine loads whole vectors, not rows.
type ColumnRowSink interface {
	RowSink
	// NewColumnWriter returns a writer for one stream of rows of the sink's
	// columns; like NewWriter, it may be called from several goroutines,
	// and each writer is used by one goroutine.
	NewColumnWriter(ctx context.Context) (ColumnRowWriter, error)
}

// ColumnRowWriter takes rows one value at a time: for each row, one setter
// per column (col is the column's index, in the sink's order), then EndRow.
// A setter of a type that does not fit the column is reported by EndRow.
// Nothing written is visible until Close returns nil; a row not ended is
// dropped.
type ColumnRowWriter interface {
	SetNull(col int)
	SetBool(col int, v bool)
	SetInt16(col int, v int16)
	SetInt32(col int, v int32)
	// SetInt64 sets a BIGINT, or the unscaled value of a DECIMAL of a
	// precision up to 18.
	SetInt64(col int, v int64)
	// SetBytes sets a VARCHAR or JSON column's text, or a BLOB; v is only
	// valid until SetBytes returns.
	SetBytes(col int, v []byte)
	// SetDate sets a DATE as days since 1970-01-01.
	SetDate(col int, days int32)
	// SetTimestamp sets a TIMESTAMP (wall clock) or TIMESTAMPTZ (instant)
	// as microseconds since 1970-01-01 00:00 (UTC).
	SetTimestamp(col int, us int64)
	SetUUID(col int, v [16]byte)
	// SetValue sets any other value, of the Go type TypeKind documents.
	SetValue(col int, v any)
	EndRow() error
	Close() error
}
