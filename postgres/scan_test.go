package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// seedLedger creates table ledger with n rows: id 1..n, a payload wide
// enough to fill a few hundred pages.
func seedLedger(t testing.TB, tb *testBundle, n int) {
	t.Helper()
	tb.db.Exec(t, `CREATE TABLE ledger (id int8 PRIMARY KEY, amount numeric(12,2), memo text)`)
	tb.db.Exec(t, `INSERT INTO ledger SELECT g, g / 100.0, repeat('x', g % 50) FROM generate_series(1, $1::int) g`, n)
	tb.db.Exec(t, `ANALYZE ledger`)
}

// checkLedger checks that rows hold each id of 1..n exactly once, and that
// amounts and memos belong to their ids.
func checkLedger(t *testing.T, rows [][]any, n int) {
	t.Helper()
	if len(rows) != n {
		t.Errorf("got %d rows, want %d", len(rows), n)
	}
	seen := make([]bool, n+1)
	var sum int64
	for _, r := range rows {
		id := r[0].(int64)
		if id < 1 || id > int64(n) || seen[id] {
			t.Fatalf("id %d is out of range or read twice", id)
		}
		seen[id] = true
		sum += id
		if r[1].(int64) != id {
			t.Fatalf("id %d: amount %v, want %d cents", id, r[1], id)
		}
		if r[2].(string) != strings.Repeat("x", int(id%50)) {
			t.Fatalf("id %d: memo %q", id, r[2])
		}
	}
	if want := int64(n) * int64(n+1) / 2; sum != want {
		t.Errorf("sum of ids %d, want %d", sum, want)
	}
}

func TestScanParallelRanges(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const n = 60000
	seedLedger(t, tb, n)
	src := tb.open(t, "ledger")
	src.minRangePages = 16 // the table has about 500 pages

	for _, par := range []int{1, 3, 8} {
		sink, err := scanAll(t, src, par)
		if err != nil {
			t.Fatalf("parallelism %d: %v", par, err)
		}
		if sink.writers != par {
			t.Errorf("parallelism %d: %d streams", par, sink.writers)
		}
		checkLedger(t, sink.rows, n)
	}
}

func TestScanSmallTableOneStream(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 1000)
	sink, err := scanAll(t, tb.open(t, "ledger"), 8)
	if err != nil {
		t.Fatal(err)
	}
	if sink.writers != 1 {
		t.Errorf("a table of a few pages was read in %d streams", sink.writers)
	}
	checkLedger(t, sink.rows, 1000)
}

// TestScanSnapshot changes the table after the scan has taken its snapshot
// and before any stream reads a row: no stream may see the change.
func TestScanSnapshot(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const n = 40000
	seedLedger(t, tb, n)
	src := tb.open(t, "ledger")
	src.minRangePages = 16

	var once sync.Once
	changed := make(chan struct{})
	var changeErr error
	sink := &collectSink{onNewWriter: func(ctx context.Context) error {
		once.Do(func() {
			defer close(changed)
			for _, q := range []string{
				`INSERT INTO ledger SELECT g, 0, 'new' FROM generate_series(40001, 45000) g`,
				`UPDATE ledger SET amount = -1, memo = 'changed' WHERE id % 7 = 0`,
				`DELETE FROM ledger WHERE id % 11 = 0`,
			} {
				if _, changeErr = tb.db.Pool.Exec(ctx, q); changeErr != nil {
					return
				}
			}
		})
		<-changed
		return changeErr
	}}
	if err := src.Scan(context.Background(), nil, 4, sink); err != nil {
		t.Fatal(err)
	}
	if sink.writers != 4 {
		t.Errorf("%d streams, want 4", sink.writers)
	}
	checkLedger(t, sink.rows, n)

	// A new scan sees the changes.
	after, err := scanAll(t, src, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := (n + 5000) - (n+5000)/11; len(after.rows) != want {
		t.Errorf("second scan: %d rows, want %d", len(after.rows), want)
	}
}

// slowView is a view that yields a row every 10 ms: the server holds its
// rows in an 8 kB output buffer, so the first of them reaches the client
// only after seconds, and a cancellation finds the server busy.
const slowView = `CREATE VIEW slow AS SELECT g AS id FROM generate_series(1, 3000) g WHERE pg_sleep(0.01)::text = ''`

// TestScanCancel cancels a scan while the server runs its COPY: Scan must
// return at once, and the server must stop the query.
func TestScanCancel(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, slowView)
	src := tb.open(t, "slow")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &collectSink{}
	done := make(chan error, 1)
	go func() { done <- src.Scan(ctx, nil, 2, sink) }()
	waitCopy(t, tb, "slow", func(n int) bool { return n > 0 })
	cancel()
	cancelled := time.Now()
	err := <-done
	if took := time.Since(cancelled); took > time.Second {
		t.Errorf("Scan returned %v after cancellation", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if sink.writers != sink.closed {
		t.Errorf("%d writers, %d closed", sink.writers, sink.closed)
	}
	waitCopy(t, tb, "slow", func(n int) bool { return n == 0 })

	// The source is still usable.
	if _, err := scanAll(t, src, 1, kalla.Filter{Column: "id", Op: kalla.OpLt, Value: []byte("3")}); err != nil {
		t.Fatalf("Scan after a cancelled scan: %v", err)
	}
}

// TestScanCancelStreaming cancels a scan from the sink while rows flow.
func TestScanCancelStreaming(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 100000)
	src := tb.open(t, "ledger")
	src.minRangePages = 16

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var cancelled time.Time
	var mu sync.Mutex
	rows := 0
	sink := &collectSink{onRow: func([]any) error {
		mu.Lock()
		defer mu.Unlock()
		if rows++; rows == 1000 {
			once.Do(func() { cancelled = time.Now(); cancel() })
		}
		return nil
	}}
	err := src.Scan(ctx, nil, 4, sink)
	if took := time.Since(cancelled); took > time.Second {
		t.Errorf("Scan returned %v after cancellation", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(sink.rows) >= 100000 {
		t.Errorf("read all %d rows despite the cancellation", len(sink.rows))
	}
}

// TestScanCloseStops closes the source while it scans.
func TestScanCloseStops(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, slowView)
	src := tb.open(t, "slow")
	done := make(chan error, 1)
	go func() { done <- src.Scan(context.Background(), nil, 1, &collectSink{}) }()
	waitCopy(t, tb, "slow", func(n int) bool { return n > 0 })
	src.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Scan of a closed source succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop Scan")
	}
	waitCopy(t, tb, "slow", func(n int) bool { return n == 0 })
}

// waitCopy polls until the number of COPY queries of table the server runs
// satisfies ok, for at most 5 s.
func waitCopy(t *testing.T, tb *testBundle, table string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		err := tb.db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY%' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()`,
			`"`+tb.db.Schema+`"."`+table+`"`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, the server runs %d COPY of %s", n, table)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScanSinkError(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 20000)
	src := tb.open(t, "ledger")
	src.minRangePages = 16
	boom := errors.New("disk full")
	var mu sync.Mutex
	rows := 0
	sink := &collectSink{onRow: func([]any) error {
		mu.Lock()
		defer mu.Unlock()
		if rows++; rows == 500 {
			return boom
		}
		return nil
	}}
	err := src.Scan(context.Background(), nil, 4, sink)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the sink's error", err)
	}
	if !strings.Contains(err.Error(), "ledger") {
		t.Errorf("error %q does not name the table", err)
	}
	if sink.writers != sink.closed {
		t.Errorf("%d writers, %d closed", sink.writers, sink.closed)
	}
	// The next scan works.
	again, err := scanAll(t, src, 4)
	if err != nil {
		t.Fatal(err)
	}
	checkLedger(t, again.rows, 20000)
}

func TestScanPartitioned(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE ledger (id int8, amount numeric(12,2), memo text) PARTITION BY RANGE (id)`)
	tb.db.Exec(t, `CREATE TABLE ledger_a PARTITION OF ledger FOR VALUES FROM (1) TO (20001)`)
	tb.db.Exec(t, `CREATE TABLE ledger_b PARTITION OF ledger FOR VALUES FROM (20001) TO (MAXVALUE)`)
	tb.db.Exec(t, `INSERT INTO ledger SELECT g, g / 100.0, repeat('x', g % 50) FROM generate_series(1, 50000) g`)
	src := tb.open(t, "ledger")
	src.minRangePages = 16
	sink, err := scanAll(t, src, 3)
	if err != nil {
		t.Fatal(err)
	}
	if sink.writers != 3 {
		t.Errorf("%d streams, want 3", sink.writers)
	}
	checkLedger(t, sink.rows, 50000)
}

var _ kalla.RowSink = (*collectSink)(nil)

// TestScanReconnects scans again after the server dropped the source's idle
// connection.
func TestScanReconnects(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 100)
	src := tb.open(t, "ledger")
	if _, err := scanAll(t, src, 1); err != nil {
		t.Fatal(err)
	}
	pid := src.conn.PgConn().PID()
	var ok bool
	if err := tb.db.Pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1::int, 5000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
	sink, err := scanAll(t, src, 1)
	if err != nil {
		t.Fatalf("scan after the connection was dropped: %v", err)
	}
	checkLedger(t, sink.rows, 100)
}
