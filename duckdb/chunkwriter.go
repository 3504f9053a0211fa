package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// A stream's rows are gathered in Go columns and loaded a batch at a time
// by one INSERT … SELECT from the stream's table function, whose chunks
// DuckDB fills on all its threads from the batch. A table function that
// waited for the rows instead (the stream feeding DuckDB's chunks as the
// COPY arrives) made the thread running the INSERT spin while the chunk
// was filled on another: DuckDB polls for tasks without sleeping when a
// task is running elsewhere (15 % of the process' CPU, measured).
const (
	batchRows  = 2 * 122880 // two row groups
	batchBytes = 32 << 20   // of Go memory (values, text, offsets) in a batch
)

// store is how a column's values are kept in a batch.
type store uint8

const (
	storeInt   store = iota // booleans, integers, DECIMAL(p<=18), days, microseconds
	storeUUID               // 16 bytes
	storeBytes              // text and bytes, in one arena
	storeAny                // anything else, as the Go values of kalla.TypeKind
)

// chunkColumn is one column of a batch.
type chunkColumn struct {
	typ   kalla.Type
	store store
	ints  []int64
	uuids [][16]byte
	arena []byte
	ends  []int // of each value in arena
	vals  []any
	nulls []int // rows that are NULL, ascending
}

func (c *chunkColumn) init(t kalla.Type) {
	c.typ = t
	switch t.Kind {
	case kalla.TypeBoolean, kalla.TypeSmallint, kalla.TypeInteger, kalla.TypeBigint,
		kalla.TypeDate, kalla.TypeTimestamp, kalla.TypeTimestampTZ:
		c.store = storeInt
	case kalla.TypeDecimal:
		c.store = storeAny
		if t.Precision <= 18 {
			c.store = storeInt
		}
	case kalla.TypeUUID:
		c.store = storeUUID
	case kalla.TypeVarchar, kalla.TypeJSON, kalla.TypeBlob:
		c.store = storeBytes
	default:
		c.store = storeAny
	}
}

// size is the bytes a value takes in the column but for its text.
func (c *chunkColumn) size() int {
	switch c.store {
	case storeInt, storeBytes: // the value, or the end of its text
		return 8
	case storeUUID:
		return 16
	default:
		return 16 + 16 // the interface, and what it points to
	}
}

func (c *chunkColumn) reset() {
	c.ints, c.uuids, c.arena, c.ends, c.vals, c.nulls = c.ints[:0], c.uuids[:0], c.arena[:0], c.ends[:0], c.vals[:0], c.nulls[:0]
}

// chunkWriter is a kalla.ColumnRowWriter (and a kalla.RowWriter) that
// loads its rows in batches.
type chunkWriter struct {
	ctx    context.Context
	conn   *sql.Conn
	sink   *appendSink
	insert string // the INSERT of a batch
	cols   []chunkColumn
	rows   int // in the batch
	size   int // bytes of the batch in Go memory
	// rowSize is a row's bytes in Go memory but for its text.
	rowSize int
	err     error // the first setter error of the row
	// maxRows and maxBytes bound a batch (batchRows, batchBytes).
	maxRows, maxBytes int
	// next is the first row of the batch no chunk has taken yet, shared
	// by DuckDB's threads while a batch loads.
	next    atomic.Int64
	pending int64 // rows not yet counted in the sink's progress
	closed  bool
}

var _ kalla.ColumnRowWriter = (*chunkWriter)(nil)

func (w *chunkWriter) mismatch(col int, what string) {
	if w.err == nil {
		c := w.sink.cols[col]
		w.err = fmt.Errorf("column %q: %s for a %s column", c.Name, what, c.Type.SQL())
	}
}

func (w *chunkWriter) int(col int, v int64, what string) {
	c := &w.cols[col]
	if c.store != storeInt {
		w.mismatch(col, what)
		return
	}
	c.ints = append(c.ints, v)
}

func (w *chunkWriter) SetNull(col int) {
	c := &w.cols[col]
	c.nulls = append(c.nulls, w.rows)
	switch c.store {
	case storeInt:
		c.ints = append(c.ints, 0)
	case storeUUID:
		c.uuids = append(c.uuids, [16]byte{})
	case storeBytes:
		c.ends = append(c.ends, len(c.arena))
	default:
		c.vals = append(c.vals, nil)
	}
}

func (w *chunkWriter) SetBool(col int, v bool) {
	var i int64
	if v {
		i = 1
	}
	w.int(col, i, "a boolean")
}
func (w *chunkWriter) SetInt16(col int, v int16)      { w.int(col, int64(v), "an int16") }
func (w *chunkWriter) SetInt32(col int, v int32)      { w.int(col, int64(v), "an int32") }
func (w *chunkWriter) SetInt64(col int, v int64)      { w.int(col, v, "an int64") }
func (w *chunkWriter) SetDate(col int, days int32)    { w.int(col, int64(days), "a date") }
func (w *chunkWriter) SetTimestamp(col int, us int64) { w.int(col, us, "a timestamp") }

func (w *chunkWriter) SetBytes(col int, v []byte) {
	c := &w.cols[col]
	if c.store != storeBytes {
		w.mismatch(col, "bytes")
		return
	}
	c.arena = append(c.arena, v...)
	c.ends = append(c.ends, len(c.arena))
	w.size += len(v)
}

func (w *chunkWriter) SetUUID(col int, v [16]byte) {
	c := &w.cols[col]
	if c.store != storeUUID {
		w.mismatch(col, "a UUID")
		return
	}
	c.uuids = append(c.uuids, v)
}

// SetValue takes the Go values of kalla.TypeKind for any column.
func (w *chunkWriter) SetValue(col int, v any) {
	c := &w.cols[col]
	if v == nil {
		w.SetNull(col)
		return
	}
	if c.store == storeAny {
		c.vals = append(c.vals, v)
		return
	}
	switch v := v.(type) {
	case bool:
		w.SetBool(col, v)
	case int16:
		w.SetInt16(col, v)
	case int32:
		w.SetInt32(col, v)
	case int64:
		w.SetInt64(col, v)
	case time.Time:
		if c.typ.Kind == kalla.TypeDate {
			// Midnight UTC: whole days, before 1970 too.
			w.SetDate(col, int32(v.Unix()/86400))
		} else {
			w.SetTimestamp(col, v.UnixMicro())
		}
	case string:
		w.SetBytes(col, []byte(v))
	case []byte:
		if c.store == storeUUID && len(v) == 16 {
			w.SetUUID(col, [16]byte(v))
		} else {
			w.SetBytes(col, v)
		}
	default:
		w.mismatch(col, fmt.Sprintf("a %T", v))
	}
}

// EndRow ends the row, and loads the batch when it is full.
func (w *chunkWriter) EndRow() error {
	if w.err != nil {
		err := fmt.Errorf("append row to %q: %w", w.sink.table, w.err)
		w.dropRow()
		return err
	}
	w.rows++
	if w.pending++; w.pending == 8192 {
		w.sink.rows.Add(w.pending)
		w.pending = 0
	}
	if w.size += w.rowSize; w.rows >= w.maxRows || w.size >= w.maxBytes {
		return w.load()
	}
	return nil
}

// dropRow drops the values set since the last row ended.
func (w *chunkWriter) dropRow() {
	w.err = nil
	for i := range w.cols {
		c := &w.cols[i]
		switch c.store {
		case storeInt:
			c.ints = c.ints[:min(len(c.ints), w.rows)]
		case storeUUID:
			c.uuids = c.uuids[:min(len(c.uuids), w.rows)]
		case storeBytes:
			c.ends = c.ends[:min(len(c.ends), w.rows)]
			end := 0
			if len(c.ends) > 0 {
				end = c.ends[len(c.ends)-1]
			}
			w.size -= len(c.arena) - end
			c.arena = c.arena[:end]
		default:
			c.vals = c.vals[:min(len(c.vals), w.rows)]
		}
		for len(c.nulls) > 0 && c.nulls[len(c.nulls)-1] >= w.rows {
			c.nulls = c.nulls[:len(c.nulls)-1]
		}
	}
}

// WriteRow makes the writer a kalla.RowWriter, for values already decoded
// into Go values.
func (w *chunkWriter) WriteRow(values ...any) error {
	if len(values) != len(w.cols) {
		return fmt.Errorf("append row to %q: %d values for %d columns", w.sink.table, len(values), len(w.cols))
	}
	for i, v := range values {
		w.SetValue(i, v)
	}
	return w.EndRow()
}

// load inserts the batch.
func (w *chunkWriter) load() error {
	if w.rows == 0 {
		return nil
	}
	w.next.Store(0)
	res, err := w.conn.ExecContext(w.ctx, w.insert)
	if err != nil {
		return fmt.Errorf("load rows into %q: %w", w.sink.table, cleanError(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(w.rows) {
		return fmt.Errorf("load rows into %q: %d of %d rows loaded (%v)", w.sink.table, n, w.rows, err)
	}
	w.rows, w.size = 0, 0
	for i := range w.cols {
		w.cols[i].reset()
	}
	return nil
}

// Close loads what is left, and frees the batch: the stream's table
// function, which keeps the writer, lives as long as the session.
func (w *chunkWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.conn.Close()
	w.sink.rows.Add(w.pending)
	w.pending = 0
	err := w.load()
	w.rows = 0
	for i := range w.cols {
		w.cols[i] = chunkColumn{typ: w.cols[i].typ, store: w.cols[i].store}
	}
	// The match that follows may use all of DuckDB's memory limit: give the
	// batch's pages back now rather than when the runtime's scavenger gets
	// to them (peak RSS of the 5M Postgres job with a 1GB limit: 1.05–1.10
	// GiB, against 1.15–1.24 without).
	debug.FreeOSMemory()
	return err
}

// chunkSource is the stream's table function: each call fills a chunk
// with the batch's next rows.
type chunkSource struct {
	w     *chunkWriter
	infos []duckdb.ColumnInfo
}

func (s *chunkSource) ColumnInfos() []duckdb.ColumnInfo { return s.infos }
func (s *chunkSource) Cardinality() *duckdb.CardinalityInfo {
	return &duckdb.CardinalityInfo{Cardinality: uint(s.w.rows), Exact: true}
}
func (s *chunkSource) Init() duckdb.ParallelTableSourceInfo {
	return duckdb.ParallelTableSourceInfo{MaxThreads: runtime.NumCPU()}
}
func (s *chunkSource) NewLocalState() any { return new(struct{}) }

func (s *chunkSource) FillChunk(_ any, chunk duckdb.DataChunk) (err error) {
	// A panic would cross DuckDB's C++ frames and end the process, with
	// every other job of an executor: fail this load instead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fill a chunk of %q: %v", s.w.sink.table, r)
		}
	}()
	w := s.w
	size := duckdb.GetDataChunkCapacity()
	from := int(w.next.Add(int64(size))) - size
	n := min(size, w.rows-from)
	if n <= 0 {
		return chunk.SetSize(0)
	}
	for i := range w.cols {
		if err := fillColumn(chunk, i, &w.cols[i], from, n); err != nil {
			return fmt.Errorf("column %q: %w", w.sink.cols[i].Name, err)
		}
	}
	return chunk.SetSize(n)
}

// fillColumn writes rows [from, from+n) of c into column i of chunk.
func fillColumn(chunk duckdb.DataChunk, i int, c *chunkColumn, from, n int) error {
	var err error
	switch c.store {
	case storeInt:
		ints := c.ints[from : from+n]
		switch c.typ.Kind {
		case kalla.TypeBoolean:
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, v != 0))
			}
		case kalla.TypeSmallint:
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, int16(v)))
			}
		case kalla.TypeInteger:
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, int32(v)))
			}
		case kalla.TypeDate:
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, time.Unix(v*86400, 0).UTC()))
			}
		case kalla.TypeTimestamp, kalla.TypeTimestampTZ:
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, time.UnixMicro(v).UTC()))
			}
		default: // BIGINT, DECIMAL(p<=18) unscaled
			for r, v := range ints {
				err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, v))
			}
		}
	case storeUUID:
		for r, v := range c.uuids[from : from+n] {
			err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, duckdb.UUID(v)))
		}
	case storeBytes:
		start := 0
		if from > 0 {
			start = c.ends[from-1]
		}
		for r, end := range c.ends[from : from+n] {
			err = firstErr(err, duckdb.SetChunkValue(chunk, i, r, c.arena[start:end:end]))
			start = end
		}
	default:
		for r, v := range c.vals[from : from+n] {
			err = firstErr(err, chunk.SetValue(i, r, v))
		}
	}
	for k := sort.SearchInts(c.nulls, from); k < len(c.nulls) && c.nulls[k] < from+n; k++ {
		err = firstErr(err, chunk.SetValue(i, c.nulls[k]-from, nil))
	}
	return err
}

func firstErr(err, next error) error {
	if err != nil {
		return err
	}
	return next
}
