package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgTables are the benchmark's tables, with the columns of the generated
// CSV files.
var pgTables = []struct{ name, columns string }{
	{"invoices", "invoice_id int8 PRIMARY KEY, customer_id int8, invoice_date date, amount numeric(12,2), currency text, reference text"},
	{"payments", "payment_id int8 PRIMARY KEY, invoice_ref int8, paid_at timestamptz, amount numeric(12,2), payer text"},
}

// loadPostgres copies the generated CSV files of d into tables of schema
// clusterbench_<n> at pgURL (unless they hold n invoices already) and
// points d's sources at the tables.
func loadPostgres(ctx context.Context, pgURL string, d *dataset, n int64, logf func(string, ...any)) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("connect to the benchmark postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema := fmt.Sprintf("clusterbench_%d", n)
	var have int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".invoices").Scan(&have); err != nil || have != n {
		start := time.Now()
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %[1]s CASCADE; CREATE SCHEMA %[1]s", schema)); err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
		for i, path := range []string{d.invoicesPath, d.paymentsPath} {
			t := pgTables[i]
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.%s (%s)", schema, t.name, t.columns)); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = conn.PgConn().CopyFrom(ctx, f, fmt.Sprintf("COPY %s.%s FROM STDIN (FORMAT csv, HEADER)", schema, t.name))
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
	d.invoicesPath = pgURL + sep + "table=" + schema + ".invoices"
	d.paymentsPath = pgURL + sep + "table=" + schema + ".payments"
	return nil
}
