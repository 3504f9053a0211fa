package duckdb

import (
	"context"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// BenchmarkAppend measures the cost per row of staging rows handed over by
// a kalla.RowReader (the Postgres path): six columns of the usual kinds.
func BenchmarkAppend(b *testing.B) {
	eng, err := Open(Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	cols := []kalla.Column{
		{Name: "id", Type: kalla.Type{Kind: kalla.TypeBigint}},
		{Name: "ref", Type: kalla.Type{Kind: kalla.TypeBigint}},
		{Name: "day", Type: kalla.Type{Kind: kalla.TypeDate}},
		{Name: "amount", Type: kalla.Type{Kind: kalla.TypeDecimal, Precision: 12, Scale: 2}},
		{Name: "cur", Type: kalla.Type{Kind: kalla.TypeVarchar}},
		{Name: "note", Type: kalla.Type{Kind: kalla.TypeVarchar}},
	}
	sess, err := eng.NewSession(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	s := sess.(*Session)
	if _, err := s.conn.ExecContext(ctx, "CREATE TABLE "+s.qualified("t")+" (id BIGINT, ref BIGINT, day DATE, amount DECIMAL(12,2), cur VARCHAR, note VARCHAR)"); err != nil {
		b.Fatal(err)
	}
	sink := &appendSink{db: s.db, schema: s.schema, table: "t", cols: cols}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	w, err := sink.NewWriter(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := w.WriteRow(int64(i), int64(i*7), day, int64(i%100000), "EUR", "customer 12345"); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}
