package duckdb

import (
	"context"
	"fmt"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

var _ kalla.ColumnRowSink = (*appendSink)(nil)

// chunkFuncs numbers the table functions the streams register: each stream
// has one of its own, in the session's own database.
var chunkFuncs atomic.Int64

// NewColumnWriter gives a stream Go columns of its own, loaded in batches
// through a table function of its own (chunkwriter.go).
func (s *appendSink) NewColumnWriter(ctx context.Context) (kalla.ColumnRowWriter, error) {
	return s.newChunkWriter(ctx)
}

// NewWriter gives a stream the same writer, for rows of Go values.
func (s *appendSink) NewWriter(ctx context.Context) (kalla.RowWriter, error) {
	return s.newChunkWriter(ctx)
}

func (s *appendSink) newChunkWriter(ctx context.Context) (*chunkWriter, error) {
	infos, err := s.columnInfos()
	if err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	w := &chunkWriter{ctx: ctx, conn: conn, sink: s, cols: make([]chunkColumn, len(s.cols)),
		maxRows: batchRows, maxBytes: batchBytes}
	for i, c := range s.cols {
		w.cols[i].init(c.Type)
		w.rowSize += w.cols[i].size()
	}
	name := fmt.Sprintf("kalla_rows_%d", chunkFuncs.Add(1))
	w.insert = fmt.Sprintf("INSERT INTO %s SELECT * FROM %s()", s.qualified, name)
	src := &chunkSource{w: w, infos: infos}
	err = duckdb.RegisterTableUDF(conn, name, duckdb.ParallelChunkTableFunction{
		BindArguments: func(map[string]any, ...any) (duckdb.ParallelChunkTableSource, error) { return src, nil },
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("register the rows of %q: %w", s.table, err)
	}
	return w, nil
}

// columnInfos are the table's columns as the table function declares them.
func (s *appendSink) columnInfos() ([]duckdb.ColumnInfo, error) {
	infos := make([]duckdb.ColumnInfo, len(s.cols))
	for i, c := range s.cols {
		var t duckdb.TypeInfo
		var err error
		switch c.Type.Kind {
		case kalla.TypeDecimal:
			t, err = duckdb.NewDecimalInfo(uint8(c.Type.Precision), uint8(c.Type.Scale))
		default:
			t, err = duckdb.NewTypeInfo(chunkTypes[c.Type.Kind])
		}
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		infos[i] = duckdb.ColumnInfo{Name: c.Name, T: t}
	}
	return infos, nil
}

// chunkTypes are the vector types of the column kinds. JSON is staged as
// VARCHAR, as the table declares it (Session.Load retypes it).
var chunkTypes = map[kalla.TypeKind]duckdb.Type{
	kalla.TypeVarchar:     duckdb.TYPE_VARCHAR,
	kalla.TypeBoolean:     duckdb.TYPE_BOOLEAN,
	kalla.TypeSmallint:    duckdb.TYPE_SMALLINT,
	kalla.TypeInteger:     duckdb.TYPE_INTEGER,
	kalla.TypeBigint:      duckdb.TYPE_BIGINT,
	kalla.TypeReal:        duckdb.TYPE_FLOAT,
	kalla.TypeDouble:      duckdb.TYPE_DOUBLE,
	kalla.TypeDate:        duckdb.TYPE_DATE,
	kalla.TypeTimestamp:   duckdb.TYPE_TIMESTAMP,
	kalla.TypeTimestampTZ: duckdb.TYPE_TIMESTAMP_TZ,
	kalla.TypeTime:        duckdb.TYPE_TIME,
	kalla.TypeUUID:        duckdb.TYPE_UUID,
	kalla.TypeBlob:        duckdb.TYPE_BLOB,
	kalla.TypeJSON:        duckdb.TYPE_VARCHAR,
}
