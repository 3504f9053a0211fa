package benchdata

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// The Postgres tables the benchmarks seed, in the current schema of the
// server they are given.
const (
	InvoicesTable = "bench_invoices"
	PaymentsTable = "bench_payments"
)

// tables are the seeded tables, in the types a real ledger would use:
// NUMERIC(12,2) money, TIMESTAMPTZ, a primary key.
var tables = []struct {
	name, columns, key string
	csv                func(*Set) string
}{
	{InvoicesTable, "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, invoice_date DATE NOT NULL, " +
		"amount NUMERIC(12,2) NOT NULL, currency VARCHAR NOT NULL, reference VARCHAR NOT NULL",
		"invoice_id", func(d *Set) string { return d.InvoicesCSV }},
	{PaymentsTable, "payment_id BIGINT NOT NULL, invoice_ref BIGINT, paid_at TIMESTAMPTZ NOT NULL, " +
		"amount NUMERIC(12,2) NOT NULL, payer VARCHAR NOT NULL",
		"payment_id", func(d *Set) string { return d.PaymentsCSV }},
}

// Postgres is a seeded Postgres: its URL and the schema of the tables.
type Postgres struct {
	URL    string
	Schema string
}

// SourceURI is the Kalla source URI of one benchmark table: the server's URL
// with ?table=schema.name added to its other parameters.
func (p *Postgres) SourceURI(table string) (string, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return "", fmt.Errorf("parse the Postgres URL: %w", err)
	}
	q := u.Query()
	q.Set("table", p.Schema+"."+table)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SeedPostgres loads the generated data into bench_invoices and
// bench_payments, unless a table comment says they already hold exactly this
// generator's data for this row count.
func SeedPostgres(ctx context.Context, pgURL string, d *Set, logf func(string, ...any)) (*Postgres, error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the benchmark Postgres: %w", err)
	}
	defer conn.Close(ctx)
	p := &Postgres{URL: pgURL}
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&p.Schema); err != nil {
		return nil, fmt.Errorf("query current schema: %w", err)
	}
	mark := fmt.Sprintf("kalla bench data v%d, %d invoices, %d payments", d.Version, d.Invoices, d.Payments)
	fresh := true
	for _, t := range tables {
		var comment *string
		err := conn.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", p.Schema+"."+t.name).Scan(&comment)
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
	for _, t := range tables {
		g.Go(func() error {
			c, err := pgx.Connect(gctx, pgURL)
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			return seedTable(gctx, c, t.name, t.columns, t.key, t.csv(d), mark)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("seed Postgres: %w", err)
	}
	logf("seeded Postgres in %.1fs", time.Since(start).Seconds())
	return p, nil
}

// seedTable recreates one table and streams a CSV into it. COPY FREEZE
// into a table created in the same transaction writes the rows frozen and
// all-visible, so the first reader (Kalla or Postgres, whichever runs first)
// does not pay for setting hint bits on every page. The primary key is built
// after the load, and ANALYZE gives the planner statistics.
func seedTable(ctx context.Context, conn *pgx.Conn, name, columns, key, csvPath, mark string) error {
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
		fmt.Sprintf("COMMENT ON TABLE %s IS %s", ident, Quote(mark)),
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
