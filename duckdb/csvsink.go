package duckdb

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"

	"github.com/kalla-dev/kalla"
)

// csvFileBytes is how much CSV a stream writes to a file before the
// engine loads it: the files bound the disk a load uses to a few of these
// per stream, while each is large enough for the engine's reader to split
// across its threads.
const csvFileBytes = 64 << 20

var _ kalla.CSVRowSink = (*appendSink)(nil)

// NewCSVWriter gives a stream files of its own in the session's folder,
// each loaded with DuckDB's CSV reader, on a connection of its own, when
// full.
func (s *appendSink) NewCSVWriter(ctx context.Context) (kalla.CSVRowWriter, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return &csvWriter{ctx: ctx, conn: conn, sink: s}, nil
}

// csvWriter writes rows to a file and loads it into the table when it
// holds csvFileBytes.
type csvWriter struct {
	ctx  context.Context
	conn *sql.Conn
	sink *appendSink
	f    *os.File
	buf  *bufio.Writer
	size int64
	rows int64 // in the current file
	// pending rows are not yet counted in the sink's progress counter,
	// which counts rows as they are read, in batches.
	pending int64
	// longest is the longest row in the current file: the reader's
	// max_line_size (2 MB by default) must hold it.
	longest int
}

func (w *csvWriter) WriteRow(row []byte) error {
	if w.f == nil {
		f, err := os.CreateTemp(w.sink.dir, "rows-*.csv")
		if err != nil {
			return fmt.Errorf("create staging file: %w", err)
		}
		w.f, w.size, w.rows, w.longest = f, 0, 0, 0
		if w.buf == nil {
			w.buf = bufio.NewWriterSize(f, 1<<20)
		} else {
			w.buf.Reset(f)
		}
	}
	if _, err := w.buf.Write(row); err != nil {
		return fmt.Errorf("write staging file: %w", err)
	}
	w.size += int64(len(row))
	w.rows++
	w.longest = max(w.longest, len(row))
	if w.pending++; w.pending == 8192 {
		w.sink.rows.Add(w.pending)
		w.pending = 0
	}
	if w.size >= csvFileBytes {
		return w.load()
	}
	return nil
}

// load loads the current file into the table and removes it.
func (w *csvWriter) load() error {
	f := w.f
	w.f = nil
	defer os.Remove(f.Name())
	err := w.buf.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write staging file: %w", err)
	}
	res, err := w.conn.ExecContext(w.ctx, fmt.Sprintf("INSERT INTO %s SELECT %s FROM %s", w.sink.qualified, w.sink.csvSelect(), w.sink.readCSV(f.Name(), w.longest)))
	if err != nil {
		return &csvLoadError{fmt.Errorf("load rows into %q: %w", w.sink.table, cleanError(err))}
	}
	if n, err := res.RowsAffected(); err != nil || n != w.rows {
		return fmt.Errorf("load rows into %q: %d of %d rows loaded (%v)", w.sink.table, n, w.rows, err)
	}
	return nil
}

// readCSV is the CSV reader of path with the table's columns and types,
// in the dialect kalla.CSVRowSink describes: no sniffing, and a quoted
// empty field is the empty string, not NULL. longest is the longest row.
func (s *appendSink) readCSV(path string, longest int) string {
	cols := make([]string, len(s.types))
	for i, t := range s.types {
		cols[i] = quoteLiteral(s.cols[i].Name) + ": " + quoteLiteral(t)
	}
	return fmt.Sprintf("read_csv(%s, columns = {%s}, header = false, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "+
		"allow_quoted_nulls = false, null_padding = false, max_line_size = %d)", quoteLiteral(path), strings.Join(cols, ", "), max(longest+1, 2<<20))
}

// csvSelect lists the columns read by readCSV. DuckDB takes infinite dates
// and timestamps, which Kalla refuses from every source (binary COPY:
// postgres/decoder.go): they fail the load here too, naming the column, and
// the read again through binary COPY (csvLoadError) reports them as usual.
func (s *appendSink) csvSelect() string {
	list := make([]string, len(s.cols))
	for i, c := range s.cols {
		list[i] = quoteIdent(c.Name)
		var what string
		switch c.Type.Kind {
		case kalla.TypeDate:
			what = "date 'infinity' has no DATE value"
		case kalla.TypeTimestamp, kalla.TypeTimestampTZ:
			what = "timestamp 'infinity' has no TIMESTAMP value"
		default:
			continue
		}
		msg := fmt.Sprintf("column %q: %s: filter it out or cast the column in a view", c.Name, what)
		list[i] = fmt.Sprintf("CASE WHEN isfinite(%s) IS NOT FALSE THEN %s ELSE error(%s) END", list[i], list[i], quoteLiteral(msg))
	}
	return strings.Join(list, ", ")
}

// csvLoadError is DuckDB refusing the CSV text of a row: a value its reader
// does not take though binary COPY carries it (a date BC, which Postgres
// writes "0044-03-15 BC"), or one Kalla refuses (infinity). Session.Load
// then reads the source again through binary COPY, which keeps the value or
// says what is wrong with it as it does for every source.
type csvLoadError struct{ err error }

func (e *csvLoadError) Error() string { return e.err.Error() }
func (e *csvLoadError) Unwrap() error { return e.err }

// binarySink is a sink without the CSV path.
type binarySink struct{ s *appendSink }

func (b binarySink) NewWriter(ctx context.Context) (kalla.RowWriter, error) {
	return b.s.NewWriter(ctx)
}

// Close loads what is left.
func (w *csvWriter) Close() error {
	var err error
	if w.f != nil {
		err = w.load()
	}
	w.sink.rows.Add(w.pending)
	w.pending = 0
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	return err
}
