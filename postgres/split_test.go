package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// scanSplits reads every split concurrently, each through a Source of its
// own (as separate executors do), into one sink.
func scanSplits(t *testing.T, tb *testBundle, table string, splits *kalla.SourceSplits, filters ...kalla.Filter) (*collectSink, error) {
	t.Helper()
	sink := &collectSink{}
	errs := make([]error, len(splits.Splits))
	var wg sync.WaitGroup
	for i, sp := range splits.Splits {
		src := tb.open(t, table)
		src.minRangePages = 16
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = src.ScanSplit(context.Background(), filters, sp, 2, sink)
		}()
	}
	wg.Wait()
	return sink, errors.Join(errs...)
}

// The splits of a table read every row exactly once, on the snapshot taken
// when the table was split: rows inserted, updated and deleted while the
// splits are being read (and between the split and the reads) are seen by
// none of them.
func TestSplitSnapshot(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const n = 40000
	seedLedger(t, tb, n)
	src := tb.open(t, "ledger")
	src.minRangePages = 16

	ctx := context.Background()
	splits, err := src.Split(ctx, nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer splits.Release()
	if len(splits.Splits) != 4 {
		t.Fatalf("%d splits, want 4", len(splits.Splits))
	}
	var r splitRange
	if err := json.Unmarshal(splits.Splits[1].Data, &r); err != nil || r.Snapshot == "" || r.Lo <= 0 || r.Hi <= r.Lo {
		t.Fatalf("split 1 is %s (%v): want a bounded page range on a snapshot", splits.Splits[1].Data, err)
	}
	tb.db.Exec(t, `INSERT INTO ledger SELECT g, 0, 'before' FROM generate_series(40001, 42000) g`)

	// Writers change the table for as long as the splits are read.
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var q string
				switch k % 3 {
				case 0:
					q = `INSERT INTO ledger SELECT g, 0, 'during' FROM generate_series($1::int8, $1::int8 + 99) g`
				case 1:
					q = `UPDATE ledger SET amount = -1, memo = 'changed' WHERE id % 97 = $1::int8 % 97`
				default:
					q = `DELETE FROM ledger WHERE id % 89 = $1::int8 % 89`
				}
				if _, err := tb.db.Pool.Exec(ctx, q, int64(100000+w*1000000+k*100)); err != nil {
					t.Errorf("change the table: %v", err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	// Let the writers commit some changes before any split is read.
	for writes.Load() < 6 {
		time.Sleep(10 * time.Millisecond)
	}
	sink, err := scanSplits(t, tb, "ledger", splits)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sink.writers != 8 {
		t.Errorf("%d streams, want 2 per split", sink.writers)
	}
	checkLedger(t, sink.rows, n)
	if writes.Load() < 10 {
		t.Errorf("only %d changes committed while the splits were read", writes.Load())
	}

	// Once released, the snapshot is gone: a split cannot be read anymore.
	if err := splits.Release(); err != nil {
		t.Fatal(err)
	}
	late := tb.open(t, "ledger")
	err = late.ScanSplit(ctx, nil, splits.Splits[2], 1, &collectSink{})
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("reading a released split: %v, want a snapshot error", err)
	}
}

// Filters apply to each split as to Scan, as parameters; a bad operand is
// reported by Split against its filter.
func TestSplitFilters(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 40000)
	src := tb.open(t, "ledger")
	src.minRangePages = 16
	ctx := context.Background()

	f := []kalla.Filter{filter("id", kalla.OpLte, 30000), filter("memo", kalla.OpLike, "%x%")}
	splits, err := src.Split(ctx, f, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer splits.Release()
	if len(splits.Splits) != 3 {
		t.Fatalf("%d splits, want 3", len(splits.Splits))
	}
	sink, err := scanSplits(t, tb, "ledger", splits, f...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := scanAll(t, tb.open(t, "ledger"), 1, f...)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != len(want.rows) || len(want.rows) == 0 {
		t.Errorf("splits read %d rows, Scan %d", len(sink.rows), len(want.rows))
	}

	_, err = src.Split(ctx, []kalla.Filter{filter("id", kalla.OpGt, "abc")}, 3)
	var v *kalla.ValidationError
	if !errors.As(err, &v) || v.Field != "filters[0].value" {
		t.Errorf("bad operand: %v, want a validation error on filters[0].value", err)
	}
}

// A table below the smallest range is one split with no snapshot, read as
// Scan reads it.
func TestSplitSmallTable(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 1000)
	splits, err := tb.open(t, "ledger").Split(context.Background(), nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer splits.Release()
	if len(splits.Splits) != 1 {
		t.Fatalf("%d splits of a small table, want 1", len(splits.Splits))
	}
	sink, err := scanSplits(t, tb, "ledger", splits)
	if err != nil {
		t.Fatal(err)
	}
	checkLedger(t, sink.rows, 1000)
}

// Every split reads an unconstrained numeric with the DECIMAL the split
// decided from the data, even when wider values were committed since; and
// closing the splitting source without Release ends its snapshot.
func TestSplitDeclaredTypes(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE amounts (id int8, amount numeric, memo text)`)
	tb.db.Exec(t, `INSERT INTO amounts SELECT g, g * 0.01, repeat('y', 100) FROM generate_series(1, 20000) g`)
	src := tb.open(t, "amounts")
	src.minRangePages = 16
	splits, err := src.Split(context.Background(), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits.Splits) != 2 {
		t.Fatalf("%d splits, want 2", len(splits.Splits))
	}
	want := kalla.Type{Kind: kalla.TypeDecimal, Precision: 18, Scale: 2}
	if got := splits.Splits[0].Columns[1].Type; got != want {
		t.Fatalf("amount declared as %+v, want %+v", got, want)
	}
	tb.db.Exec(t, `INSERT INTO amounts VALUES (20001, 1.23456, 'wider')`)
	sink, err := scanSplits(t, tb, "amounts", splits)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != 20000 {
		t.Errorf("%d rows, want 20000", len(sink.rows))
	}
	for _, row := range sink.rows {
		if row[1].(int64) != row[0].(int64) {
			t.Fatalf("id %v: amount %v, want %v hundredths", row[0], row[1], row[0])
		}
	}

	src.Close()
	err = tb.open(t, "amounts").ScanSplit(context.Background(), nil, splits.Splits[0], 1, &collectSink{})
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("reading a split after its source closed: %v, want a snapshot error", err)
	}
}
