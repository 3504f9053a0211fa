package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// input is a size's generated data and the job's two source URIs in the
// chosen format.
type input struct {
	*benchdata.Set
	left, right string
}

// sources points the job at d's data in o.format: the Parquet files as
// they are, CSV files with a header (written once from the Parquet
// files), or Postgres tables loaded from the generator's CSV.
func sources(ctx context.Context, o *options, d *benchdata.Set, logf func(string, ...any)) (input, error) {
	in := input{Set: d, left: d.InvoicesParquet, right: d.PaymentsParquet}
	switch o.format {
	case "csv":
		var err error
		if in.left, err = headedCSV(ctx, d.InvoicesParquet); err == nil {
			in.right, err = headedCSV(ctx, d.PaymentsParquet)
		}
		return in, err
	case "postgres":
		if err := d.WriteCSV(ctx); err != nil {
			return in, err
		}
		return in, loadPostgres(ctx, o.pgURL, &in, logf)
	}
	return in, nil
}

// headedCSV writes the rows of a Parquet file to a CSV file with a header
// row beside it, unless it is there, and returns its path.
func headedCSV(ctx context.Context, parquet string) (string, error) {
	path := strings.TrimSuffix(parquet, filepath.Ext(parquet)) + "-header.csv"
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	tmp := path + ".tmp"
	q := fmt.Sprintf("COPY (SELECT * FROM read_parquet(%s)) TO %s (FORMAT csv, HEADER true)", benchdata.Quote(parquet), benchdata.Quote(tmp))
	if _, err := db.ExecContext(ctx, q); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, os.Rename(tmp, path)
}

// pgTables are the benchmark's tables, with the columns of the generated
// CSV files.
var pgTables = []struct{ name, columns string }{
	{"invoices", "invoice_id int8 PRIMARY KEY, customer_id int8, invoice_date date, amount numeric(12,2), currency text, reference text"},
	{"payments", "payment_id int8 PRIMARY KEY, invoice_ref int8, paid_at timestamptz, amount numeric(12,2), payer text"},
}

// loadPostgres copies the generated CSV files of in into tables of schema
// clusterbench_<n> at pgURL (unless they hold n invoices already) and
// points in's sources at the tables.
func loadPostgres(ctx context.Context, pgURL string, in *input, logf func(string, ...any)) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("connect to the benchmark postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	n := in.Invoices
	schema := fmt.Sprintf("clusterbench_%d", n)
	var have int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".invoices").Scan(&have); err != nil || have != n {
		start := time.Now()
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %[1]s CASCADE; CREATE SCHEMA %[1]s", schema)); err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
		for i, path := range []string{in.InvoicesCSV, in.PaymentsCSV} {
			t := pgTables[i]
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.%s (%s)", schema, t.name, t.columns)); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = conn.PgConn().CopyFrom(ctx, f, fmt.Sprintf("COPY %s.%s FROM STDIN (FORMAT csv)", schema, t.name))
			f.Close()
			if err != nil {
				return fmt.Errorf("load %s: %w", t.name, err)
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("ANALYZE %s.%s", schema, t.name)); err != nil {
				return err
			}
		}
		logf("loaded %d invoices into %s in %.1fs", n, schema, time.Since(start).Seconds())
	}
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	in.left = pgURL + sep + "table=" + schema + ".invoices"
	in.right = pgURL + sep + "table=" + schema + ".payments"
	return nil
}
