package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// Footer is the metadata at the end of a Parquet file: its schema and row
// groups. Reading it first lets a reader fetch only the row groups it needs
// (an S3 object cut into splits at row groups).
type Footer struct {
	meta *format.FileMetaData
}

// RowGroup is where a row group's column chunks lie in its file, [Start,
// End), and how many rows it holds.
type RowGroup struct {
	Rows, Start, End int64
}

// TailSize is how many bytes from the end of a Parquet file hold its footer
// length and magic: a reader fetches at least this much first.
const TailSize = 8

// FooterLength returns the length of the footer that tail (the last bytes
// of a file, at least TailSize of them) ends with.
func FooterLength(tail []byte) (int64, error) {
	if len(tail) < TailSize {
		return 0, fmt.Errorf("%d bytes is too short for a Parquet file", len(tail))
	}
	end := tail[len(tail)-TailSize:]
	if string(end[4:]) != magic {
		return 0, errors.New("not a Parquet file (no PAR1 at its end)")
	}
	return int64(binary.LittleEndian.Uint32(end[:4])), nil
}

// ParseFooter decodes a footer: the n bytes before the file's last
// TailSize bytes.
func ParseFooter(b []byte) (*Footer, error) {
	m := new(format.FileMetaData)
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b, m); err != nil {
		return nil, fmt.Errorf("decode footer: %w", err)
	}
	return &Footer{meta: m}, nil
}

// ReadFooter reads the footer of the size-byte file r.
func ReadFooter(r io.ReaderAt, size int64) (*Footer, error) {
	if size < int64(len(magic)+TailSize) {
		return nil, fmt.Errorf("%d bytes is too short for a Parquet file", size)
	}
	var tail [TailSize]byte
	if _, err := r.ReadAt(tail[:], size-TailSize); err != nil {
		return nil, err
	}
	n, err := FooterLength(tail[:])
	if err != nil {
		return nil, err
	}
	if n > size-int64(len(magic)+TailSize) {
		return nil, fmt.Errorf("footer of %d bytes does not fit in %d", n, size)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-TailSize-n); err != nil {
		return nil, err
	}
	return ParseFooter(buf)
}

// Rows is the file's row count.
func (f *Footer) Rows() int64 { return f.meta.NumRows }

// RowGroups lists the file's row groups in order.
func (f *Footer) RowGroups() []RowGroup {
	out := make([]RowGroup, len(f.meta.RowGroups))
	for i, rg := range f.meta.RowGroups {
		g := RowGroup{Rows: rg.NumRows, Start: -1}
		for _, cc := range rg.Columns {
			start, size := chunkSpan(&cc.MetaData)
			if g.Start < 0 || start < g.Start {
				g.Start = start
			}
			g.End = max(g.End, start+size)
		}
		g.Start = max(g.Start, 0)
		out[i] = g
	}
	return out
}

// SameSchema reports whether f and g describe the same columns.
func (f *Footer) SameSchema(g *Footer) bool { return reflect.DeepEqual(f.meta.Schema, g.meta.Schema) }

// WriteSubset writes to w a footer (with its length and magic) that lists
// only the row groups groups of f, where they are: appended to a copy of
// f's file that holds at least those row groups' bytes and its first four,
// it makes a Parquet file of just those rows.
func (f *Footer) WriteSubset(w io.Writer, groups []int) error {
	m := *f.meta
	m.RowGroups, m.NumRows = nil, 0
	for _, i := range groups {
		if i < 0 || i >= len(f.meta.RowGroups) {
			return fmt.Errorf("row group %d of %d", i, len(f.meta.RowGroups))
		}
		rg := f.meta.RowGroups[i]
		rg.Ordinal = int16(len(m.RowGroups))
		m.RowGroups = append(m.RowGroups, rg)
		m.NumRows += rg.NumRows
	}
	return writeFooter(w, &m)
}

// chunkSpan returns where a column chunk starts (its dictionary page, if
// any, comes first) and its length.
func chunkSpan(md *format.ColumnMetaData) (start, size int64) {
	start = md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
		start = md.DictionaryPageOffset
	}
	return start, md.TotalCompressedSize
}

// writeFooter writes m, its length and the closing magic.
func writeFooter(w io.Writer, m *format.FileMetaData) error {
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), m)
	if err != nil {
		return fmt.Errorf("encode footer: %w", err)
	}
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	_, err = w.Write(append(footer, magic...))
	return err
}
