package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
)

// dataset is a generated pair of Parquet or CSV files.
type dataset struct {
	invoicesPath, paymentsPath string
	payments                   int64
}

// counts are a reconciliation's result sizes.
type counts struct {
	Matched        int64 `json:"matched_count"`
	UnmatchedLeft  int64 `json:"unmatched_left_count"`
	UnmatchedRight int64 `json:"unmatched_right_count"`
}

// genMacro is a fixed integer mix (not DuckDB's hash(), which is not
// promised to be stable across versions), so the data are the same on every
// run.
const genMacro = `CREATE MACRO mix(x, s) AS ((((x + s) * 2654435761) % 4294967291) * 1597334677) % 4294967291`

// The invoices: amounts are whole cents scaled by an exact DECIMAL product.
const invoicesSQL = `
SELECT i + 1 AS invoice_id, mix(i, 3) % 50000 + 1 AS customer_id,
       CAST(DATE '2024-01-01' + CAST(mix(i, 4) % 366 AS INTEGER) AS DATE) AS invoice_date,
       CAST((mix(i, 2) % 9999900 + 100) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(12,2)) AS amount,
       ['EUR', 'USD', 'GBP', 'CHF'][mix(i, 5) % 4 + 1] AS currency,
       'INV-' || lpad(CAST(i + 1 AS VARCHAR), 10, '0') AS reference
FROM range({N}) t(i)`

// The payments: per invoice bucket b = mix(i, 1) % 100, b < 60 pays the
// exact amount, b < 68 within the 0.01 tolerance, b < 75 outside it, b < 80
// pays in two exact halves' worth of rows (two payments of the amount), and
// the rest pay nothing; N/10 orphans reference no invoice (every tenth a
// NULL reference).
const paymentsSQL = `
WITH inv AS (
    SELECT i, mix(i, 1) % 100 AS b, mix(i, 2) % 9999900 + 100 AS cents FROM range({N}) t(i)
), pays AS (
    SELECT 2 * i + 1 AS payment_id, i + 1 AS invoice_ref, mix(i, 6) AS h,
           cents + CASE WHEN b < 60 THEN 0 WHEN b < 64 THEN 1 WHEN b < 68 THEN -1 WHEN b < 75 THEN 2 ELSE 0 END AS cents
    FROM inv WHERE b < 80
    UNION ALL
    SELECT 2 * i + 2, i + 1, mix(i, 7), cents FROM inv WHERE b >= 75 AND b < 80
    UNION ALL
    SELECT 2 * {N} + 1 + k, CASE WHEN k % 10 = 0 THEN NULL ELSE {N} + 1 + k END, mix(k, 8), mix(k, 9) % 9999900 + 100
    FROM range({N} // 10) t(k)
)
SELECT payment_id, invoice_ref,
       CAST(TIMESTAMP '2024-01-01 00:00:00' + to_seconds(h % 31536000) AS TIMESTAMPTZ) AS paid_at,
       CAST(cents * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(12,2)) AS amount,
       'CUST-' || (h % 50000) AS payer
FROM pays`

// generate writes invoices and payments files of format (parquet or csv)
// for n invoices into dir, unless a previous run left them there.
func generate(ctx context.Context, dir, format string, n int64, logf func(string, ...any)) (*dataset, error) {
	d := &dataset{invoicesPath: filepath.Join(dir, "invoices."+format), paymentsPath: filepath.Join(dir, "payments."+format)}
	done := filepath.Join(dir, "done")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := os.Stat(done); err != nil {
		start := time.Now()
		if _, err := db.ExecContext(ctx, genMacro); err != nil {
			return nil, err
		}
		for _, f := range [][2]string{{invoicesSQL, d.invoicesPath}, {paymentsSQL, d.paymentsPath}} {
			q := strings.ReplaceAll(f[0], "{N}", fmt.Sprint(n))
			if _, err := db.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO '%s' (FORMAT %s)", q, f[1], format)); err != nil {
				return nil, fmt.Errorf("write %s: %w", f[1], err)
			}
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, err
		}
		logf("generated %d invoices in %s in %.1fs", n, dir, time.Since(start).Seconds())
	}
	if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM '%s'", d.paymentsPath)).Scan(&d.payments); err != nil {
		return nil, err
	}
	return d, nil
}

// matchSQL is the job's match: 1:1 on the invoice reference with a 0.01
// tolerance on the amount.
const matchSQL = `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount, p.paid_at
FROM invoices i JOIN payments p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`

// job is the job's JSON for output folder out.
func (d *dataset) job(runID, out string) map[string]any {
	return map[string]any{
		"run_id":    runID,
		"match_sql": matchSQL,
		"sources": []any{
			map[string]any{"alias": "invoices", "uri": d.invoicesPath},
			map[string]any{"alias": "payments", "uri": d.paymentsPath},
		},
		"output_path":  out,
		"primary_keys": map[string]any{"invoices": []any{"invoice_id"}, "payments": []any{"payment_id"}},
	}
}
