package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
)

// csvExact reports whether every column of rel reads the same through
// COPY (FORMAT csv) and the engine's CSV reader as through binary COPY:
// integers, numerics of a declared scale (their text has no more digits
// than the DECIMAL holds, so nothing is rounded), dates, timestamps, UUIDs,
// booleans and text. Floats, JSON, bytes, times and the columns read as
// ::text keep the binary path.
func (rel *relation) csvExact() bool {
	for _, c := range rel.cols {
		if c.text {
			return false
		}
		switch c.dec {
		case decText:
			if c.typ.Kind != kalla.TypeVarchar {
				return false
			}
		case decNumeric:
			if !c.declaredScale {
				return false
			}
		case decBool, decInt2, decInt4, decInt8, decDate, decTimestamp, decUUID:
		default:
			return false
		}
	}
	return true
}

// csvSettings make COPY (FORMAT csv) write what kalla.CSVRowSink reads:
// ISO dates, timestamps with time zone in UTC.
const csvSettings = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'"

// csvRows hands each CopyData message of a COPY (FORMAT csv), one row, to
// a kalla.CSVRowWriter.
type csvRows struct {
	w    kalla.CSVRowWriter
	rows int64
}

func (c *csvRows) Write(p []byte) (int, error) {
	if err := c.w.WriteRow(p); err != nil {
		return 0, err
	}
	c.rows++
	return len(p), nil
}

// streamCSV copies one range as CSV into a writer of sink's own and
// returns the rows written. Infinite dates and timestamps, which the
// engine would take but binary COPY rejects, are refused as there.
func (s *Source) streamCSV(ctx context.Context, conn *pgx.Conn, rel *relation, fs *filterSet, r pageRange, sink kalla.CSVRowSink) (int64, error) {
	if _, err := conn.Exec(ctx, csvSettings); err != nil {
		return 0, fmt.Errorf("set CSV output: %w", err)
	}
	w, err := sink.NewCSVWriter(ctx)
	if err != nil {
		return 0, fmt.Errorf("open writer: %w", err)
	}
	rows := &csvRows{w: w}
	q := copySQL(rel, fs, r)
	q = strings.TrimSuffix(q, "(FORMAT binary)") + "(FORMAT csv)"
	_, err = conn.PgConn().CopyTo(ctx, rows, q)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close writer: %w", cerr)
	}
	if err != nil && ctx.Err() != nil {
		return rows.rows, ctx.Err()
	}
	return rows.rows, err
}
