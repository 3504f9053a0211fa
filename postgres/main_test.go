package postgres

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

func TestMain(m *testing.M) { kallatest.Main(m) }

// testBundle is what a test needs besides the source under test.
type testBundle struct {
	pg  *kallatest.PG
	db  *kallatest.DB
	log *bytes.Buffer // the source's log
}

// setup gives the test a schema of its own on the shared test server.
func setup(t testing.TB) *testBundle {
	t.Helper()
	pg := kallatest.Postgres(t)
	return &testBundle{pg: pg, db: pg.NewSchema(t), log: &bytes.Buffer{}}
}

// open opens table of the bundle's schema, logging to the bundle's buffer,
// and closes it when the test ends.
func (tb *testBundle) open(t testing.TB, table string) *Source {
	t.Helper()
	return tb.openURI(t, tb.db.TableURI(table))
}

func (tb *testBundle) openURI(t testing.TB, uri string) *Source {
	t.Helper()
	src, err := Open(context.Background(), uri)
	if err != nil {
		t.Fatalf("Open(%s): %v", kalla.RedactURI(uri), err)
	}
	s := src.(*Source)
	s.log = slog.New(slog.NewTextHandler(&lockedWriter{w: tb.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() { s.Close() })
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// collectSink keeps every row written to it, the way the engine's sink
// copies values: the decoder reuses the slice it passes.
type collectSink struct {
	mu      sync.Mutex
	rows    [][]any
	writers int
	closed  int

	// onNewWriter, if set, runs in NewWriter.
	onNewWriter func(ctx context.Context) error
	// onRow, if set, runs before each row is kept.
	onRow func(row []any) error
}

func (s *collectSink) NewWriter(ctx context.Context) (kalla.RowWriter, error) {
	if s.onNewWriter != nil {
		if err := s.onNewWriter(ctx); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writers++
	return &collectWriter{sink: s}, nil
}

type collectWriter struct {
	sink *collectSink
	rows [][]any
}

func (w *collectWriter) WriteRow(values ...any) error {
	row := slices.Clone(values)
	if w.sink.onRow != nil {
		if err := w.sink.onRow(row); err != nil {
			return err
		}
	}
	w.rows = append(w.rows, row)
	return nil
}

func (w *collectWriter) Close() error {
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	w.sink.rows = append(w.sink.rows, w.rows...)
	w.sink.closed++
	return nil
}

// scanAll scans src with filters into a new collectSink.
func scanAll(t testing.TB, src *Source, parallelism int, filters ...kalla.Filter) (*collectSink, error) {
	t.Helper()
	sink := &collectSink{}
	err := src.Scan(context.Background(), filters, parallelism, sink)
	if sink.writers != sink.closed {
		t.Errorf("%d writers opened, %d closed", sink.writers, sink.closed)
	}
	return sink, err
}

// sameValue compares a scanned value with an expected one exactly.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case *big.Int:
		g, ok := got.(*big.Int)
		return ok && g.Cmp(w) == 0
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w) && g.Location() == time.UTC
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	case float64:
		g, ok := got.(float64)
		return ok && math.Float64bits(g) == math.Float64bits(w)
	case float32:
		g, ok := got.(float32)
		return ok && math.Float32bits(g) == math.Float32bits(w)
	default:
		return got == want
	}
}

func bigInt(t testing.TB, s string) *big.Int {
	t.Helper()
	z, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad big int %q", s)
	}
	return z
}
