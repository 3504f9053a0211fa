package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// compareSQL is valid in both DuckDB (where Kalla defines tolerance_match)
// and Postgres (where the test defines it as the same SQL function).
const compareSQL = `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`

// seedBoundaryData fills invoices and payments with n invoices in the
// patterns a reconciliation meets: 60% exact, 15% off by -2..+2 cents (the
// tolerance boundary both ways), 5% paid twice, NULL references, orphans on
// both sides, and amounts a binary float gets wrong (x.x1 - x.x0).
func seedBoundaryData(t *testing.T, db *kallatest.DB, n int) {
	db.Exec(t, `CREATE TABLE invoices (invoice_id bigint PRIMARY KEY, customer text, amount numeric(12,2), issued date)`)
	db.Exec(t, `CREATE TABLE payments (payment_id bigint PRIMARY KEY, invoice_ref bigint, amount numeric(12,2), paid_at timestamptz)`)
	db.Exec(t, `INSERT INTO invoices
		SELECT i, 'customer ' || (i % 997), ((i * 7919) % 1000000) / 100.0 + 0.10, DATE '2026-01-01' + (i % 365)
		FROM generate_series(1, $1::int) i`, n)
	db.Exec(t, `INSERT INTO payments
		SELECT i, CASE WHEN i % 20 IN (16, 17) THEN NULL ELSE i END,
		       amount + CASE WHEN i % 20 BETWEEN 12 AND 14 THEN ((i % 5) - 2) * 0.01 ELSE 0 END,
		       TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 minute'
		FROM (SELECT invoice_id AS i, amount FROM invoices) inv WHERE i % 20 < 18`)
	// Second payments for 5% of invoices, and payments for invoices that do
	// not exist.
	db.Exec(t, `INSERT INTO payments
		SELECT 10000000 + invoice_id, invoice_id, amount, TIMESTAMPTZ '2026-06-01 00:00:00+00'
		FROM invoices WHERE invoice_id % 20 = 15`)
	db.Exec(t, `INSERT INTO payments
		SELECT 20000000 + i, 50000000 + i, 1.00, TIMESTAMPTZ '2026-06-02 00:00:00+00' FROM generate_series(1, $1::int / 50) i`, n)
	db.Exec(t, `ANALYZE invoices; ANALYZE payments`)
}

// Kalla's matched pairs and unmatched keys equal, row for row, what Postgres
// computes for the same SQL, whether the sources are read from Postgres or
// from CSV files exported from it.
func TestResultsEqualPostgres(t *testing.T) {
	t.Parallel()
	n := 100000
	if testing.Short() {
		n = 10000
	}
	db := kallatest.Postgres(t).NewSchema(t)
	seedBoundaryData(t, db, n)
	db.Exec(t, `CREATE FUNCTION tolerance_match(a numeric, b numeric, t numeric) RETURNS boolean
		LANGUAGE sql IMMUTABLE AS 'SELECT abs(a - b) <= t'`)
	db.Exec(t, `CREATE VIEW left_src AS SELECT * FROM invoices`)
	db.Exec(t, `CREATE VIEW right_src AS SELECT * FROM payments`)

	wantMatched := pgRows(t, db.Pool, "SELECT invoice_id::text, payment_id::text, invoice_amount::text, paid_amount::text FROM ("+compareSQL+") m")
	wantLeft := pgRows(t, db.Pool, "SELECT invoice_id::text FROM invoices l WHERE NOT EXISTS (SELECT 1 FROM ("+compareSQL+") m WHERE m.invoice_id = l.invoice_id)")
	wantRight := pgRows(t, db.Pool, "SELECT payment_id::text FROM payments r WHERE NOT EXISTS (SELECT 1 FROM ("+compareSQL+") m WHERE m.payment_id = r.payment_id)")
	if len(wantMatched) < n/2 || len(wantLeft) < n/20 || len(wantRight) < n/20 {
		t.Fatalf("degenerate data: %d matched, %d/%d unmatched", len(wantMatched), len(wantLeft), len(wantRight))
	}

	dir := t.TempDir()
	csvDir := filepath.Join(dir, "csv")
	os.Mkdir(csvDir, 0o755)
	for _, table := range []string{"invoices", "payments"} {
		f, err := os.Create(filepath.Join(csvDir, table+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := db.Pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Conn().PgConn().CopyTo(context.Background(), f, fmt.Sprintf("COPY %s TO STDOUT (FORMAT csv, HEADER)", table))
		conn.Release()
		f.Close()
		if err != nil {
			t.Fatalf("export %s: %v", table, err)
		}
	}

	for _, kind := range []struct{ name, left, right string }{
		{"postgres", db.TableURI("invoices"), db.TableURI("payments")},
		{"csv", filepath.Join(csvDir, "invoices.csv"), "file://" + filepath.Join(csvDir, "payments.csv")},
	} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			job := &kalla.Job{
				MatchSQL:    compareSQL,
				Sources:     []kalla.SourceSpec{{Alias: "left_src", URI: kind.left}, {Alias: "right_src", URI: kind.right}},
				OutputPath:  filepath.Join(dir, "out-"+kind.name),
				PrimaryKeys: map[string][]string{"left_src": {"invoice_id"}, "right_src": {"payment_id"}},
			}
			res, err := newRunner(t).Run(context.Background(), job, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			kallatest.SameRows(t, "matched", ducktest.Rows(t, "SELECT invoice_id, payment_id, invoice_amount, paid_amount FROM "+parquetOf(res.OutputPaths.Matched)), wantMatched)
			kallatest.SameRows(t, "unmatched left", ducktest.Rows(t, "SELECT invoice_id FROM "+parquetOf(res.OutputPaths.UnmatchedLeft)), wantLeft)
			kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, "SELECT payment_id FROM "+parquetOf(res.OutputPaths.UnmatchedRight)), wantRight)
			if res.MatchedCount != int64(len(wantMatched)) || res.UnmatchedLeftCount != int64(len(wantLeft)) || res.UnmatchedRightCount != int64(len(wantRight)) {
				t.Errorf("counts %+v, want %d/%d/%d", res, len(wantMatched), len(wantLeft), len(wantRight))
			}
		})
	}
}
