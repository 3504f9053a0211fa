package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kalla-dev/kalla"
)

// newColumnDecoder decodes a binary COPY stream into a ColumnRowWriter:
// each value goes to a typed setter straight from the socket's buffer, none
// is boxed in an interface or copied in Go (the engine copies the text).
func newColumnDecoder(ctx context.Context, cols []column, w kalla.ColumnRowWriter) *copyDecoder {
	d := newCopyDecoder(ctx, cols, nil)
	d.cw = w
	return d
}

// emitColumns decodes the fields of one whole tuple into the column writer.
func (d *copyDecoder) emitColumns(b []byte) error {
	w := d.cw
	off := 0
	for i := range d.cols {
		l := int(int32(binary.BigEndian.Uint32(b[off:])))
		off += 4
		if l < 0 {
			w.SetNull(i)
			continue
		}
		if err := d.setColumn(i, &d.cols[i], b[off:off+l]); err != nil {
			return fmt.Errorf("column %q: %w", d.cols[i].name, err)
		}
		off += l
	}
	if err := w.EndRow(); err != nil {
		return fmt.Errorf("write row: %w", err)
	}
	return nil
}

// setColumn decodes one value of column i into the column writer: the
// common types typed, the others (floats, times, numerics wider than 18
// digits) as the Go values the row path decodes.
func (d *copyDecoder) setColumn(i int, c *column, b []byte) error {
	w := d.cw
	switch c.dec {
	case decText, decBytes:
		w.SetBytes(i, b)
	case decJSONB:
		if len(b) == 0 || b[0] != 1 {
			return errors.New("jsonb value of an unknown version")
		}
		w.SetBytes(i, b[1:])
	case decBool:
		if len(b) != 1 {
			return sizeError("bool", b)
		}
		w.SetBool(i, b[0] != 0)
	case decInt2:
		if len(b) != 2 {
			return sizeError("int2", b)
		}
		w.SetInt16(i, int16(binary.BigEndian.Uint16(b)))
	case decInt4:
		if len(b) != 4 {
			return sizeError("int4", b)
		}
		w.SetInt32(i, int32(binary.BigEndian.Uint32(b)))
	case decInt8:
		if len(b) != 8 {
			return sizeError("int8", b)
		}
		w.SetInt64(i, int64(binary.BigEndian.Uint64(b)))
	case decNumeric:
		neg, v, err := c.numeric(b)
		if err != nil {
			return err
		}
		if c.typ.Precision <= 18 {
			w.SetInt64(i, numericInt64(neg, v))
		} else {
			w.SetValue(i, numericBig(neg, v))
		}
	case decDate:
		days, err := unixDays(b)
		if err != nil {
			return err
		}
		w.SetDate(i, days)
	case decTimestamp:
		us, err := unixMicros(b)
		if err != nil {
			return err
		}
		w.SetTimestamp(i, us)
	case decUUID:
		if len(b) != 16 {
			return sizeError("uuid", b)
		}
		w.SetUUID(i, [16]byte(b))
	default:
		v, err := d.value(c, b)
		if err != nil {
			return err
		}
		w.SetValue(i, v)
	}
	return nil
}
