package ducktest

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// PatternData is SQL (DuckDB and Postgres alike) for invoices and payments
// where every reconciliation pattern finds matches, with NULL keys among
// the payments.
var PatternData = []string{
	`CREATE TABLE invoices AS SELECT i AS invoice_id, 'c' || (i % 50) AS customer, CAST((i - i % 5) / 5 AS INTEGER) AS batch_id,
		CAST((i * 37) % 1000 + 10.25 AS NUMERIC(12,2)) AS amount FROM generate_series(1, 2000) AS g(i)`,
	`CREATE TABLE payments AS SELECT invoice_id AS payment_id, invoice_id AS invoice_ref, CAST(NULL AS INTEGER) AS batch_ref,
		CAST(NULL AS VARCHAR) AS customer, CAST(amount + (invoice_id % 3) * 0.005 AS NUMERIC(12,3)) AS amount FROM invoices WHERE invoice_id % 4 = 0`,
	`INSERT INTO payments SELECT 100000 + invoice_id, invoice_id, NULL, NULL, CAST(10 AS NUMERIC(12,3)) FROM invoices WHERE invoice_id % 4 = 1`,
	`INSERT INTO payments SELECT 200000 + invoice_id, invoice_id, NULL, NULL, amount - 10 FROM invoices WHERE invoice_id % 4 = 1`,
	`INSERT INTO payments SELECT 300000 + batch_id, NULL, batch_id, NULL, sum(amount) FROM invoices WHERE batch_id % 4 = 2 GROUP BY batch_id`,
	`INSERT INTO payments SELECT 400000 + min(invoice_id), NULL, NULL, customer, 100 FROM invoices WHERE customer IN ('c7', 'c13') GROUP BY customer`,
	`INSERT INTO payments SELECT 500000 + min(invoice_id), NULL, NULL, customer, sum(amount) - 100 FROM invoices WHERE customer IN ('c7', 'c13') GROUP BY customer`,
	`INSERT INTO payments SELECT 600000 + i, 900000 + i, NULL, NULL, 1 FROM generate_series(1, 50) AS g(i)`,
}

// WritePatternParquet runs PatternData in a scratch DuckDB and writes the
// invoices and payments tables as Parquet files in dir.
func WritePatternParquet(t testing.TB, dir string) (invoices, payments string) {
	t.Helper()
	return WritePatternFiles(t, dir, "parquet")
}

// WritePatternFiles runs PatternData in a scratch DuckDB and writes the
// invoices and payments tables in dir as files of format (parquet, or csv
// with a header row).
func WritePatternFiles(t testing.TB, dir, format string) (invoices, payments string) {
	t.Helper()
	return WriteTables(t, PatternData, dir, format)
}

// WriteTables runs data (statements creating the tables invoices and
// payments) in a scratch DuckDB and writes both tables in dir as files of
// format.
func WriteTables(t testing.TB, data []string, dir, format string) (invoices, payments string) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range data {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	invoices, payments = filepath.Join(dir, "invoices."+format), filepath.Join(dir, "payments."+format)
	for table, path := range map[string]string{"invoices": invoices, "payments": payments} {
		if _, err := db.Exec(fmt.Sprintf("COPY %s TO '%s' (FORMAT %s)", table, path, format)); err != nil {
			t.Fatal(err)
		}
	}
	return invoices, payments
}
