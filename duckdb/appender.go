package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// NewWriter gives a stream a DuckDB Appender on its own connection.
func (s *appendSink) NewWriter(ctx context.Context) (kalla.RowWriter, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	w := &appendWriter{conn: conn, sink: s}
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), s.schema, s.table)
		w.app = a
		return err
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("create appender for %q: %w", s.table, err)
	}
	return w, nil
}

// appendWriter counts rows locally and publishes the count in batches, so
// the progress counter costs nothing per row.
type appendWriter struct {
	conn    *sql.Conn
	app     *duckdb.Appender
	sink    *appendSink
	pending int64
	vals    []driver.Value
}

func (w *appendWriter) WriteRow(values ...any) error {
	if cap(w.vals) < len(values) {
		w.vals = make([]driver.Value, len(values))
	}
	w.vals = w.vals[:len(values)]
	for i, v := range values {
		w.vals[i] = v
	}
	if err := w.app.AppendRow(w.vals...); err != nil {
		return w.describe(err)
	}
	w.pending++
	if w.pending == 8192 {
		w.sink.rows.Add(w.pending)
		w.pending = 0
	}
	return nil
}

func (w *appendWriter) describe(err error) error {
	return fmt.Errorf("append row to %q: %w", w.sink.table, err)
}

// Close flushes the appended rows into the table.
func (w *appendWriter) Close() error {
	if w.app == nil {
		return nil
	}
	err := w.app.Close()
	w.app = nil
	w.conn.Close()
	if err != nil {
		return w.describe(err)
	}
	w.sink.rows.Add(w.pending)
	w.pending = 0
	return nil
}
