package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// benchTables are the Postgres tables the benchmark seeds, in the types a
// real ledger would use: NUMERIC(12,2) money, TIMESTAMPTZ, a primary key.
var benchTables = []struct {
	name, columns, key string
	csv                func(*benchdata.Set) string
}{
	{"bench_invoices", "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, invoice_date DATE NOT NULL, " +
		"amount NUMERIC(12,2) NOT NULL, currency VARCHAR NOT NULL, reference VARCHAR NOT NULL",
		"invoice_id", func(d *benchdata.Set) string { return d.InvoicesCSV }},
	{"bench_payments", "payment_id BIGINT NOT NULL, invoice_ref BIGINT, paid_at TIMESTAMPTZ NOT NULL, " +
		"amount NUMERIC(12,2) NOT NULL, payer VARCHAR NOT NULL",
		"payment_id", func(d *benchdata.Set) string { return d.PaymentsCSV }},
}

// benchPostgres is a seeded Postgres.
type benchPostgres struct {
	url    string
	schema string
}

// sourceURI is the Kalla source URI of one benchmark table: the server's URL
// with ?table=schema.name added to its other parameters.
func (p *benchPostgres) sourceURI(table string) (string, error) {
	u, err := url.Parse(p.url)
	if err != nil {
		return "", fmt.Errorf("parse --postgres: %w", err)
	}
	q := u.Query()
	q.Set("table", p.schema+"."+table)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// seedBenchPostgres loads the generated data into bench_invoices and
// bench_payments, unless a table comment says they already hold exactly this
// generator's data for this row count.
func seedBenchPostgres(ctx context.Context, pgURL string, d *benchdata.Set, logf func(string, ...any)) (*benchPostgres, error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, fmt.Errorf("connect to --postgres: %w", err)
	}
	defer conn.Close(ctx)
	p := &benchPostgres{url: pgURL}
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&p.schema); err != nil {
		return nil, fmt.Errorf("query current schema: %w", err)
	}
	mark := fmt.Sprintf("kalla bench data v%d, %d invoices, %d payments", d.Version, d.Invoices, d.Payments)
	fresh := true
	for _, t := range benchTables {
		var comment *string
		err := conn.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", p.schema+"."+t.name).Scan(&comment)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", t.name, err)
		}
		fresh = fresh && comment != nil && *comment == mark
	}
	if fresh {
		logf("reusing the seeded tables in Postgres (%s)", mark)
		return p, nil
	}

	start := time.Now()
	if err := d.WriteCSV(ctx); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range benchTables {
		g.Go(func() error {
			c, err := pgx.Connect(gctx, pgURL)
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			return seedBenchTable(gctx, c, t.name, t.columns, t.key, t.csv(d), mark)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("seed Postgres: %w", err)
	}
	logf("seeded Postgres in %.1fs", time.Since(start).Seconds())
	return p, nil
}

// seedBenchTable recreates one table and streams a CSV into it. COPY FREEZE
// into a table created in the same transaction writes the rows frozen and
// all-visible, so the first reader (Kalla or Postgres, whichever runs first)
// does not pay for setting hint bits on every page. The primary key is built
// after the load, and ANALYZE gives the planner statistics.
func seedBenchTable(ctx context.Context, conn *pgx.Conn, name, columns, key, csvPath, mark string) error {
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	for _, s := range []string{"DROP TABLE IF EXISTS " + ident, fmt.Sprintf("CREATE TABLE %s (%s)", ident, columns)} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, f, "COPY "+ident+" FROM STDIN (FORMAT csv, FREEZE)"); err != nil {
		return fmt.Errorf("copy into %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, s := range []string{
		fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", ident, key),
		"ANALYZE " + ident,
		fmt.Sprintf("COMMENT ON TABLE %s IS %s", ident, benchdata.Quote(mark)),
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// runPostgresNative has Postgres do the reconciliation itself: the match
// into a temporary table, then the two anti-joins, counted. It writes no
// Parquet (Postgres cannot), so it does less work than the other variants.
// Server settings (work_mem, parallel workers) are the server's own.
func runPostgresNative(ctx context.Context, p *benchPostgres) (benchRun, error) {
	var run benchRun
	start := time.Now()
	conn, err := pgx.Connect(ctx, p.url)
	if err != nil {
		return run, fmt.Errorf("connect to --postgres: %w", err)
	}
	defer conn.Close(context.Background())
	inv := pgx.Identifier{p.schema, "bench_invoices"}.Sanitize()
	pay := pgx.Identifier{p.schema, "bench_payments"}.Sanitize()
	join := fmt.Sprintf("CREATE TEMP TABLE bench_matched AS SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount "+
		"FROM %s i JOIN %s p ON p.invoice_ref = i.invoice_id AND abs(i.amount - p.amount) <= 0.01", inv, pay)
	phase := time.Now()
	tag, err := conn.Exec(ctx, join)
	if err != nil {
		return run, fmt.Errorf("match: %w", err)
	}
	run.Counts.Matched = tag.RowsAffected()
	if _, err := conn.Exec(ctx, "ANALYZE bench_matched"); err != nil {
		return run, fmt.Errorf("analyze: %w", err)
	}
	run.Phases = append(run.Phases, benchPhase{Name: "join", Seconds: time.Since(phase).Seconds()})
	for _, q := range []struct {
		name, sql string
		count     *int64
	}{
		{"anti-join left", "SELECT count(*) FROM " + inv + " i WHERE NOT EXISTS (SELECT 1 FROM bench_matched m WHERE m.invoice_id = i.invoice_id)", &run.Counts.UnmatchedLeft},
		{"anti-join right", "SELECT count(*) FROM " + pay + " p WHERE NOT EXISTS (SELECT 1 FROM bench_matched m WHERE m.payment_id = p.payment_id)", &run.Counts.UnmatchedRight},
	} {
		phase = time.Now()
		if err := conn.QueryRow(ctx, q.sql).Scan(q.count); err != nil {
			return run, fmt.Errorf("%s: %w", q.name, err)
		}
		run.Phases = append(run.Phases, benchPhase{Name: q.name, Seconds: time.Since(phase).Seconds()})
	}
	run.Seconds = time.Since(start).Seconds()
	return run, nil
}
