package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/kalla-dev/kalla"
)

// decoder says how a column's binary COPY values become Go values.
type decoder uint8

const (
	decText  decoder = iota // text, varchar, bpchar, name, citext, json, ::text casts → string
	decJSONB                // jsonb: a version byte, then text → string
	decBool
	decInt2
	decInt4
	decInt8
	decFloat4
	decFloat8
	decNumeric
	decDate
	decTime
	decTimestamp // timestamp and timestamptz
	decUUID
	decBytes
)

// copySignature opens every binary COPY stream.
var copySignature = []byte("PGCOPY\n\377\r\n\000")

// pgEpoch is 2000-01-01, the origin of Postgres dates and timestamps, in
// seconds since 1970.
const pgEpoch = 946684800

// arenaSize is the size of the blocks text and byte values are carved from:
// one allocation per 64 kB rather than one per value (2 million fewer per
// BenchmarkScan pass, whose rows hold two texts). A value the sink keeps
// holds its block alive.
const arenaSize = 64 << 10

// copyDecoder decodes a binary COPY stream (written to it in pieces, as
// pgconn.CopyTo receives them) and writes each row to a RowWriter. It
// decodes in the caller's goroutine rather than behind an io.Pipe: the
// server sends a CopyData message per row, and a pipe would cost a
// goroutine handoff for each. A tuple split across writes is kept until
// the rest arrives.
type copyDecoder struct {
	ctx  context.Context
	cols []column
	w    kalla.RowWriter
	// cw, when set, takes the values instead of w, typed (columncopy.go).
	cw kalla.ColumnRowWriter

	pend   []byte // an incomplete tuple carried to the next Write
	header bool   // the header was read
	ended  bool   // the trailer was read
	row    []any  // reused: the writer copies values on WriteRow
	arena  []byte
	box    boxes
	rows   int64
}

func newCopyDecoder(ctx context.Context, cols []column, w kalla.RowWriter) *copyDecoder {
	return &copyDecoder{ctx: ctx, cols: cols, w: w, row: make([]any, len(cols)), box: newBoxes()}
}

// Write implements io.Writer for pgconn.CopyTo; p is only valid until Write
// returns.
func (d *copyDecoder) Write(p []byte) (int, error) {
	data := p
	if len(d.pend) > 0 {
		d.pend = append(d.pend, p...)
		data = d.pend
	}
	n, err := d.consume(data)
	if err != nil {
		return 0, err
	}
	rest := data[n:]
	if len(d.pend) > 0 {
		d.pend = d.pend[:copy(d.pend, rest)]
	} else if len(rest) > 0 {
		d.pend = append(d.pend[:0], rest...)
	}
	return len(p), nil
}

// finish reports a stream that ended early.
func (d *copyDecoder) finish() error {
	if !d.ended || len(d.pend) > 0 {
		return errors.New("COPY stream ended before its trailer")
	}
	return nil
}

// consume decodes the complete tuples at the start of b and returns the
// bytes used.
func (d *copyDecoder) consume(b []byte) (int, error) {
	off := 0
	if !d.header {
		// Signature, int32 flags, int32 extension length, extension.
		if len(b) < len(copySignature)+8 {
			return 0, nil
		}
		if !bytes.Equal(b[:len(copySignature)], copySignature) {
			return 0, errors.New("not a binary COPY stream")
		}
		if flags := binary.BigEndian.Uint32(b[11:]); flags&(1<<16) != 0 {
			return 0, errors.New("binary COPY with OIDs is not supported")
		}
		ext := int(binary.BigEndian.Uint32(b[15:]))
		if len(b) < 19+ext {
			return 0, nil
		}
		off = 19 + ext
		d.header = true
	}
	for !d.ended {
		n, err := d.tuple(b[off:])
		if err != nil || n == 0 {
			return off, err
		}
		off += n
	}
	return off, nil
}

// tuple decodes and writes one tuple from the start of b, returning its
// length, or 0 if b holds only part of it.
func (d *copyDecoder) tuple(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	nf := int(int16(binary.BigEndian.Uint16(b)))
	if nf == -1 {
		d.ended = true
		return 2, nil
	}
	if nf != len(d.cols) {
		return 0, fmt.Errorf("COPY row has %d fields, want %d", nf, len(d.cols))
	}
	// First pass: is the whole tuple here?
	end := 2
	for range nf {
		if end+4 > len(b) {
			return 0, nil
		}
		if l := int32(binary.BigEndian.Uint32(b[end:])); l > 0 {
			end += int(l)
		}
		end += 4
		if end > len(b) {
			return 0, nil
		}
	}
	if err := d.emit(b[2:end]); err != nil {
		return 0, err
	}
	d.rows++
	if d.rows&4095 == 0 {
		if err := d.ctx.Err(); err != nil {
			return 0, err
		}
	}
	return end, nil
}

// emit decodes the fields of one whole tuple and writes the row.
func (d *copyDecoder) emit(b []byte) error {
	if d.cw != nil {
		return d.emitColumns(b)
	}
	off := 0
	for i := range d.cols {
		l := int(int32(binary.BigEndian.Uint32(b[off:])))
		off += 4
		if l < 0 {
			d.row[i] = nil
			continue
		}
		v, err := d.value(&d.cols[i], b[off:off+l])
		if err != nil {
			return fmt.Errorf("column %q: %w", d.cols[i].name, err)
		}
		d.row[i] = v
		off += l
	}
	if err := d.w.WriteRow(d.row...); err != nil {
		return fmt.Errorf("write row: %w", err)
	}
	return nil
}

func (d *copyDecoder) value(c *column, b []byte) (any, error) {
	switch c.dec {
	case decText:
		return d.box.str.put(d.str(b)), nil
	case decJSONB:
		if len(b) == 0 || b[0] != 1 {
			return nil, errors.New("jsonb value of an unknown version")
		}
		return d.box.str.put(d.str(b[1:])), nil
	case decBool:
		if len(b) != 1 {
			return nil, sizeError("bool", b)
		}
		return b[0] != 0, nil
	case decInt2:
		if len(b) != 2 {
			return nil, sizeError("int2", b)
		}
		return d.box.i16.put(int16(binary.BigEndian.Uint16(b))), nil
	case decInt4:
		if len(b) != 4 {
			return nil, sizeError("int4", b)
		}
		return d.box.i32.put(int32(binary.BigEndian.Uint32(b))), nil
	case decInt8:
		if len(b) != 8 {
			return nil, sizeError("int8", b)
		}
		return d.box.i64.put(int64(binary.BigEndian.Uint64(b))), nil
	case decFloat4:
		if len(b) != 4 {
			return nil, sizeError("float4", b)
		}
		return d.box.f32.put(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
	case decFloat8:
		if len(b) != 8 {
			return nil, sizeError("float8", b)
		}
		return d.box.f64.put(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
	case decNumeric:
		neg, v, err := c.numeric(b)
		if err != nil {
			return nil, err
		}
		if c.typ.Precision <= 18 {
			return d.box.i64.put(numericInt64(neg, v)), nil
		}
		return numericBig(neg, v), nil
	case decDate:
		days, err := unixDays(b)
		if err != nil {
			return nil, err
		}
		return d.box.time.put(time.Unix(int64(days)*86400, 0).UTC()), nil
	case decTime:
		if len(b) != 8 {
			return nil, sizeError("time", b)
		}
		// Microseconds since midnight, on 0001-01-01 (-62135596800 in
		// Unix seconds). Postgres's 24:00:00 lands on 0001-01-02.
		us := int64(binary.BigEndian.Uint64(b))
		return d.box.time.put(time.Unix(us/1e6-62135596800, us%1e6*1000).UTC()), nil
	case decTimestamp:
		us, err := unixMicros(b)
		if err != nil {
			return nil, err
		}
		return d.box.time.put(time.UnixMicro(us).UTC()), nil
	case decUUID:
		if len(b) != 16 {
			return nil, sizeError("uuid", b)
		}
		return d.box.bytes.put(d.bytes(b)), nil
	case decBytes:
		return d.box.bytes.put(d.bytes(b)), nil
	}
	return nil, fmt.Errorf("no decoder %d", c.dec)
}

// numeric decodes a numeric of the column's DECIMAL type.
func (c *column) numeric(b []byte) (bool, uint128, error) {
	neg, v, err := decodeNumeric(b, c.typ.Precision, c.typ.Scale)
	if err == errNumericRange {
		return false, v, fmt.Errorf("value does not fit %s (for an unconstrained numeric, the table changed after its columns were read)", c.typ.SQL())
	}
	return neg, v, err
}

// unixDays is a binary date as days since 1970-01-01. Kalla refuses
// infinite dates from every source.
func unixDays(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, sizeError("date", b)
	}
	days := int32(binary.BigEndian.Uint32(b))
	if days == math.MaxInt32 || days == math.MinInt32 {
		return 0, errors.New("date 'infinity' has no DATE value: filter it out or cast the column in a view")
	}
	// Postgres dates end in 5874897 AD: no overflow.
	return days + pgEpoch/86400, nil
}

// unixMicros is a binary timestamp as microseconds since 1970-01-01.
func unixMicros(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, sizeError("timestamp", b)
	}
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return 0, errors.New("timestamp 'infinity' has no TIMESTAMP value: filter it out or cast the column in a view")
	}
	// Postgres timestamps end in 294276 AD, 9.2e18 µs: no overflow.
	return us + pgEpoch*1e6, nil
}

func sizeError(typ string, b []byte) error {
	return fmt.Errorf("%d-byte %s value", len(b), typ)
}

// bytes copies b into the arena.
func (d *copyDecoder) bytes(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	if len(b) > arenaSize/8 {
		return bytes.Clone(b)
	}
	if len(b) > cap(d.arena)-len(d.arena) {
		d.arena = make([]byte, 0, arenaSize)
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

// str copies b into the arena and returns it as a string. The arena's bytes
// are never written again once handed out (new values go past its length,
// then to a fresh block), which is what makes the string immutable.
func (d *copyDecoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaSize/8 {
		return string(b)
	}
	if len(b) > cap(d.arena)-len(d.arena) {
		d.arena = make([]byte, 0, arenaSize)
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return unsafe.String(&d.arena[start], len(b))
}
