// Package benchdata generates the invoices and payments that kallabench
// and benchmarks/clusterbench reconcile, and says, from the generator's
// design alone, what every correct reconciliation of them must report. It is
// one package so that both benchmarks measure the same data and check the
// same counts.
package benchdata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver

	"github.com/kalla-dev/kalla"
)

// Version changes whenever the generator's output changes, so that data left
// in a folder or a Postgres by an older generator is regenerated.
const Version = 1

// The generator draws every "random" value from mix, a fixed bijective hash
// of the row number and a per-field salt, so the data are the same on every
// run and machine (DuckDB's own random() and hash() are not promised to be
// stable across versions). Each invoice falls in one of 100 buckets:
//
//	 0..59  one payment, exact amount                       matched
//	60..64  one payment, amount + 0.01 (= the tolerance)     matched
//	65..67  one payment, amount - 0.01                      matched
//	68..70  one payment, amount + 0.02 (one cent above)     both sides unmatched
//	71..72  one payment, amount - 0.02                      both sides unmatched
//	73..74  one payment, amount + 0.05                      both sides unmatched
//	75..77  two payments, both exact                        two matches
//	78      two payments, exact and + 0.01                  two matches
//	79      two payments, exact and + 0.02                  one match, one payment unmatched
//	80..99  no payment                                      invoice unmatched
//
// and N/10 orphan payments reference no invoice (one in ten has a NULL
// invoice_ref). That is 60% exact, 15% within a few cents, 5% duplicates,
// 20% unpaid invoices, and about 0.95 N payments.
const (
	mixMul1  = 2654435761
	mixMul2  = 1597334677
	mixPrime = 4294967291
)

// mix is the generator's hash in Go; mixSQL is the same in DuckDB.
// Neither overflows int64 while x+salt < 3.4e9.
func mix(x, salt int64) int64 {
	h := ((x + salt) * mixMul1) % mixPrime
	return (h * mixMul2) % mixPrime
}

var mixSQL = fmt.Sprintf("CREATE MACRO bench_mix(x, s) AS ((((x + s) * %d) %% %d) * %d) %% %d",
	mixMul1, mixPrime, mixMul2, mixPrime)

// Counts are the sizes of a reconciliation's three results.
type Counts struct {
	Matched        int64 `json:"matched"`
	UnmatchedLeft  int64 `json:"unmatched_left"`
	UnmatchedRight int64 `json:"unmatched_right"`
}

func (c Counts) String() string {
	return fmt.Sprintf("matched=%d unmatched_left=%d unmatched_right=%d", c.Matched, c.UnmatchedLeft, c.UnmatchedRight)
}

// ResultCounts are the counts of a Kalla result, to compare with Expected.
func ResultCounts(r *kalla.Result) Counts {
	return Counts{Matched: r.MatchedCount, UnmatchedLeft: r.UnmatchedLeftCount, UnmatchedRight: r.UnmatchedRightCount}
}

// Set is a generated data set. Its JSON is the marker that lets a later run
// reuse the files.
type Set struct {
	Version         int    `json:"version"`
	Invoices        int64  `json:"invoices"`
	Payments        int64  `json:"payments"`
	Expected        Counts `json:"expected"`
	InvoicesParquet string `json:"-"`
	PaymentsParquet string `json:"-"`
	InvoicesCSV     string `json:"-"`
	PaymentsCSV     string `json:"-"`
}

// Expected derives, from the bucket design alone, what every correct
// reconciliation of n generated invoices must report, and how many payments
// there are. It is independent of the SQL that writes the files, so it
// checks the generator as well as the engines.
func Expected(n int64) (c Counts, payments int64) {
	orphans := n / 10
	for i := range n {
		switch b := mix(i, 1) % 100; {
		case b < 68:
			c.Matched++
			payments++
		case b < 75:
			c.UnmatchedLeft++
			c.UnmatchedRight++
			payments++
		case b < 79:
			c.Matched += 2
			payments += 2
		case b == 79:
			c.Matched++
			c.UnmatchedRight++
			payments += 2
		default:
			c.UnmatchedLeft++
		}
	}
	c.UnmatchedRight += orphans
	return c, payments + orphans
}

// invoicesSQL selects the invoices. Amounts are whole cents scaled by an
// exact DECIMAL multiplication, never a float.
const invoicesSQL = `
SELECT i + 1 AS invoice_id,
       bench_mix(i, 3) % 50000 + 1 AS customer_id,
       CAST(DATE '2024-01-01' + CAST(bench_mix(i, 4) % 366 AS INTEGER) AS DATE) AS invoice_date,
       CAST((bench_mix(i, 2) % 9999900 + 100) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(12,2)) AS amount,
       ['EUR', 'USD', 'GBP', 'CHF'][bench_mix(i, 5) % 4 + 1] AS currency,
       'INV-' || lpad(CAST(i + 1 AS VARCHAR), 10, '0') AS reference
FROM range({N}) t(i)`

// paymentsSQL selects the payments; the bucket boundaries are those of
// Expected.
const paymentsSQL = `
WITH inv AS (
    SELECT i, bench_mix(i, 1) % 100 AS b, bench_mix(i, 2) % 9999900 + 100 AS cents,
           bench_mix(i, 3) % 50000 + 1 AS customer_id, bench_mix(i, 4) % 366 AS day
    FROM range({N}) t(i)
), pays AS (
    SELECT 2 * i + 1 AS payment_id, i + 1 AS invoice_ref, day, bench_mix(i, 6) AS h, customer_id,
           cents + CASE WHEN b < 60 THEN 0 WHEN b < 65 THEN 1 WHEN b < 68 THEN -1
                        WHEN b < 71 THEN 2 WHEN b < 73 THEN -2 WHEN b < 75 THEN 5 ELSE 0 END AS cents
    FROM inv WHERE b < 80
    UNION ALL
    SELECT 2 * i + 2, i + 1, day, bench_mix(i, 7), customer_id,
           cents + CASE b WHEN 78 THEN 1 WHEN 79 THEN 2 ELSE 0 END
    FROM inv WHERE b >= 75 AND b < 80
    UNION ALL
    SELECT 2 * {N} + 1 + k, CASE WHEN k % 10 = 0 THEN NULL ELSE {N} + 1 + k END,
           bench_mix(k, 8) % 366, bench_mix(k, 9), bench_mix(k, 10) % 50000 + 1,
           bench_mix(k, 11) % 9999900 + 100
    FROM range({N} // 10) t(k)
)
SELECT payment_id, invoice_ref,
       CAST(TIMESTAMP '2024-01-01 00:00:00' + to_days(CAST(day + h % 45 AS INTEGER)) + to_seconds(h % 86400) AS TIMESTAMPTZ) AS paid_at,
       CAST(cents * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(12,2)) AS amount,
       'CUST-' || customer_id AS payer
FROM pays`

// Generate writes invoices.parquet and payments.parquet for n invoices into
// dir, unless dir already holds this generator's files for n (reuse is what
// makes repeated runs at 5M rows cheap).
func Generate(ctx context.Context, dir string, n int64, logf func(string, ...any)) (*Set, error) {
	if n < 10 || n > 1_000_000_000 {
		return nil, fmt.Errorf("--rows %d: use between 10 and 1e9", n)
	}
	d := &Set{
		Version:         Version,
		Invoices:        n,
		InvoicesParquet: filepath.Join(dir, "invoices.parquet"),
		PaymentsParquet: filepath.Join(dir, "payments.parquet"),
		InvoicesCSV:     filepath.Join(dir, "invoices.csv"),
		PaymentsCSV:     filepath.Join(dir, "payments.csv"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	d.Expected, d.Payments = Expected(n)
	meta := filepath.Join(dir, "bench-data.json")
	want, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if have, err := os.ReadFile(meta); err == nil && string(have) == string(want) && fileExists(d.InvoicesParquet) && fileExists(d.PaymentsParquet) {
		logf("reusing the data in %s", dir)
		return d, nil
	}
	// CSV files written from older data go too.
	os.Remove(meta)
	for _, p := range []string{d.InvoicesCSV, d.PaymentsCSV} {
		os.Remove(p)
		os.Remove(strings.TrimSuffix(p, ".csv") + "-header.csv")
	}

	start := time.Now()
	err = withDuckDB(ctx, func(conn *sql.Conn) error {
		for _, f := range []struct{ query, path string }{{invoicesSQL, d.InvoicesParquet}, {paymentsSQL, d.PaymentsParquet}} {
			q := strings.ReplaceAll(f.query, "{N}", fmt.Sprint(n))
			if _, err := conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", q, Quote(f.path))); err != nil {
				return fmt.Errorf("write %s: %w", f.path, err)
			}
		}
		var got int64
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet("+Quote(d.PaymentsParquet)+")").Scan(&got); err != nil {
			return fmt.Errorf("count payments: %w", err)
		}
		if got != d.Payments {
			return fmt.Errorf("generator wrote %d payments, its design says %d", got, d.Payments)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate data: %w", err)
	}
	logf("generated %d invoices and %d payments as Parquet in %.1fs", d.Invoices, d.Payments, time.Since(start).Seconds())
	if err := os.WriteFile(meta, want, 0o644); err != nil {
		return nil, fmt.Errorf("write data marker: %w", err)
	}
	return d, nil
}

// WriteCSV writes the CSV files that seed Postgres (COPY FROM STDIN reads
// them as they are, without a header); DuckDB writes them from the Parquet
// files.
func (d *Set) WriteCSV(ctx context.Context) error {
	return writeCSV(ctx, false, [2]string{d.InvoicesParquet, d.InvoicesCSV}, [2]string{d.PaymentsParquet, d.PaymentsCSV})
}

// HeaderCSV writes the invoices and payments as CSV files with a header row,
// the form a reconciliation's CSV sources take, and returns their paths.
func (d *Set) HeaderCSV(ctx context.Context) (invoices, payments string, err error) {
	invoices = strings.TrimSuffix(d.InvoicesCSV, ".csv") + "-header.csv"
	payments = strings.TrimSuffix(d.PaymentsCSV, ".csv") + "-header.csv"
	err = writeCSV(ctx, true, [2]string{d.InvoicesParquet, invoices}, [2]string{d.PaymentsParquet, payments})
	return invoices, payments, err
}

// writeCSV writes each Parquet file of files[i][0] as the CSV file
// files[i][1], unless all of them exist.
func writeCSV(ctx context.Context, header bool, files ...[2]string) error {
	missing := false
	for _, f := range files {
		missing = missing || !fileExists(f[1])
	}
	if !missing {
		return nil
	}
	return withDuckDB(ctx, func(conn *sql.Conn) error {
		for _, f := range files {
			tmp := f[1] + ".tmp"
			q := fmt.Sprintf("COPY (SELECT * FROM read_parquet(%s)) TO %s (FORMAT csv, HEADER %t)", Quote(f[0]), Quote(tmp), header)
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("write %s: %w", f[1], err)
			}
			if err := os.Rename(tmp, f[1]); err != nil {
				return fmt.Errorf("write %s: %w", f[1], err)
			}
		}
		return nil
	})
}

// The aliases of a benchmark job's sources, named for their side rather
// than their table so that the same match text runs on files and tables.
const (
	LeftAlias  = "left_src"
	RightAlias = "right_src"
)

// MatchSQL is the match every benchmark runs: 1:1 on the invoice reference
// with a 0.01 tolerance on the amount.
const MatchSQL = "SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount " +
	"FROM " + LeftAlias + " i JOIN " + RightAlias + " p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)"

// Job is the benchmark job over the invoices at leftURI and the payments at
// rightURI, writing into outputPath; the caller sets RunID if it needs one.
func Job(leftURI, rightURI, outputPath string) kalla.Job {
	return kalla.Job{
		MatchSQL: MatchSQL,
		Sources: []kalla.SourceSpec{
			{Alias: LeftAlias, URI: leftURI},
			{Alias: RightAlias, URI: rightURI},
		},
		OutputPath:  outputPath,
		PrimaryKeys: map[string][]string{LeftAlias: {"invoice_id"}, RightAlias: {"payment_id"}},
	}
}

// withDuckDB gives fn a connection to a fresh in-memory DuckDB with the
// generator's macro, in UTC so TIMESTAMPTZ values do not depend on the
// machine's zone.
func withDuckDB(ctx context.Context, fn func(*sql.Conn) error) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range []string{"SET TimeZone = 'UTC'", mixSQL} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return fn(conn)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// Quote quotes a SQL string literal (DuckDB and Postgres alike).
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
