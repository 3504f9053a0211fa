package duckdb

import (
	"context"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// BenchmarkStageColumns measures the cost per row of staging rows handed
// over value by value by a kalla.RowReader (the Postgres path): six
// columns of the usual kinds, through the typed setters.
func BenchmarkStageColumns(b *testing.B) {
	sink := benchSink(b)
	w, err := sink.newChunkWriter(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cur, note := []byte("EUR"), []byte("customer 12345")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.SetInt64(0, int64(i))
		w.SetInt64(1, int64(i*7))
		w.SetDate(2, 20455)
		w.SetInt64(3, int64(i%100000))
		w.SetBytes(4, cur)
		w.SetBytes(5, note)
		if err := w.EndRow(); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStageRows is BenchmarkStageColumns with the rows as Go values
// (kalla.RowWriter).
func BenchmarkStageRows(b *testing.B) {
	sink := benchSink(b)
	w, err := sink.NewWriter(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.WriteRow(int64(i), int64(i*7), day, int64(i%100000), "EUR", "customer 12345"); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchSink is the sink of a table of six columns in a session of its own.
func benchSink(b *testing.B) *appendSink {
	b.Helper()
	ctx := context.Background()
	eng, err := Open(Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	sess, err := eng.NewSession(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sess.Close() })
	s := sess.(*Session)
	if _, err := s.conn.ExecContext(ctx, "CREATE TABLE "+s.qualified("t")+" (id BIGINT, ref BIGINT, day DATE, amount DECIMAL(12,2), cur VARCHAR, note VARCHAR)"); err != nil {
		b.Fatal(err)
	}
	cols := []kalla.Column{
		{Name: "id", Type: kalla.Type{Kind: kalla.TypeBigint}},
		{Name: "ref", Type: kalla.Type{Kind: kalla.TypeBigint}},
		{Name: "day", Type: kalla.Type{Kind: kalla.TypeDate}},
		{Name: "amount", Type: kalla.Type{Kind: kalla.TypeDecimal, Precision: 12, Scale: 2}},
		{Name: "cur", Type: kalla.Type{Kind: kalla.TypeVarchar}},
		{Name: "note", Type: kalla.Type{Kind: kalla.TypeVarchar}},
	}
	return &appendSink{db: s.db, schema: s.schema, table: "t", cols: cols, qualified: s.qualified("t")}
}
