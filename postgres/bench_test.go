package postgres

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// discardSink counts rows and drops them.
type discardSink struct{ rows atomic.Int64 }

func (s *discardSink) NewWriter(context.Context) (kalla.RowWriter, error) {
	return &discardWriter{sink: s}, nil
}

type discardWriter struct {
	sink *discardSink
	n    int64
}

func (w *discardWriter) WriteRow(...any) error { w.n++; return nil }
func (w *discardWriter) Close() error          { w.sink.rows.Add(w.n); return nil }

// BenchmarkScan reads a 1M-row table (KALLA_BENCH_ROWS to change it) of
// six typical reconciliation columns (bigint, numeric(12,2), date,
// timestamptz, two texts) into a sink that drops the rows, with as many
// streams as CPUs.
func BenchmarkScan(b *testing.B) {
	n := 1_000_000
	if env := os.Getenv("KALLA_BENCH_ROWS"); env != "" {
		var err error
		if n, err = strconv.Atoi(env); err != nil {
			b.Fatalf("KALLA_BENCH_ROWS: %v", err)
		}
	}
	tb := setup(b)
	tb.db.Exec(b, `CREATE TABLE bench (id int8, amount numeric(12,2), booked date, at timestamptz, ref text, memo varchar(64))`)
	tb.db.Exec(b, `INSERT INTO bench
		SELECT g, (g % 100000) / 100.0 - 250, date '2024-01-01' + g % 365, timestamptz '2024-01-01' + g * interval '1 second',
		       'INV-' || g, 'payment for order ' || (g::int8 * 7919 % 1000003)
		FROM generate_series(1, $1::int) g`, n)
	tb.db.Exec(b, `VACUUM ANALYZE bench`)
	src := tb.open(b, "bench")
	if _, err := src.Columns(context.Background()); err != nil {
		b.Fatal(err)
	}
	par := runtime.GOMAXPROCS(0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		sink := &discardSink{}
		if err := src.Scan(context.Background(), nil, par, sink); err != nil {
			b.Fatal(err)
		}
		if got := sink.rows.Load(); got != int64(n) {
			b.Fatalf("read %d rows, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	// The server's share of the CPU is not ours to tune; this is Kalla's.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n*b.N), "client-cpu-ns/row")
}

// cpuTime returns the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
