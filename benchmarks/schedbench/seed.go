package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// dataVersion changes whenever the generators do, so that tables seeded by
// an older version are not reused.
const dataVersion = 1

// toleranceMatchSQL defines, in each pattern's schema, the function that
// Kalla's DuckDB engine provides as a macro: abs(a - b) <= t, inclusive and
// exact (numeric). PARALLEL SAFE keeps parallel plans open to Postgres.
const toleranceMatchSQL = "CREATE OR REPLACE FUNCTION %s.tolerance_match(a numeric, b numeric, t numeric) RETURNS boolean " +
	"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT abs(a - b) <= t'"

// schema is the Postgres schema holding one pattern's tables, and the
// left_src and right_src views that let Postgres run match_sql as is.
func schema(p *pattern) string { return "schedbench_" + p.name }

// tableURI is the Kalla source URI of table in p's schema.
func tableURI(pgURL string, p *pattern, table string) (string, error) {
	u, err := url.Parse(pgURL)
	if err != nil {
		return "", fmt.Errorf("parse --pg-url: %w", err)
	}
	q := u.Query()
	q.Set("table", schema(p)+"."+table)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// seedPattern creates p's schema with rows invoices and their payments,
// unless the schema's comment says it already holds exactly that (and
// reseed is false). It returns the two tables' row counts.
func seedPattern(ctx context.Context, pgURL string, p *pattern, idx int, rows int64, reseed bool, logf func(string, ...any)) ([2]int64, error) {
	var n [2]int64
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return n, fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(context.Background())
	s := pgx.Identifier{schema(p)}.Sanitize()
	mark := fmt.Sprintf("kalla schedbench data v%d, pattern %s, %d invoices", dataVersion, p.name, rows)
	var comment *string
	err = conn.QueryRow(ctx, "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", schema(p)).Scan(&comment)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return n, fmt.Errorf("inspect schema %s: %w", schema(p), err)
	}
	if !reseed && comment != nil && *comment == mark {
		for i, t := range []string{"invoices", "payments"} {
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+s+"."+t).Scan(&n[i]); err != nil {
				return n, fmt.Errorf("count %s.%s: %w", schema(p), t, err)
			}
		}
		logf("%s: reusing the seeded tables (%d invoices, %d payments)", p.name, n[0], n[1])
		return n, defineHelpers(ctx, conn, s)
	}

	start := time.Now()
	for _, q := range []string{
		"DROP SCHEMA IF EXISTS " + s + " CASCADE",
		"CREATE SCHEMA " + s,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return n, fmt.Errorf("%s: %w", q, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range []struct{ name, columns string }{{"invoices", p.invoices}, {"payments", p.payments}} {
		g.Go(func() error {
			rows, err := seedTable(gctx, pgURL, s+"."+t.name, t.columns, func(w *rowWriter) {
				// Both tables run the same generator from the same seed,
				// each keeping its own side.
				rng := newRand(idx)
				if i == 0 {
					p.generate(rng, rows, w, nil)
				} else {
					p.generate(rng, rows, nil, w)
				}
			})
			n[i] = rows
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return n, fmt.Errorf("seed %s: %w", p.name, err)
	}
	if err := defineHelpers(ctx, conn, s); err != nil {
		return n, err
	}
	if _, err := conn.Exec(ctx, "COMMENT ON SCHEMA "+s+" IS '"+mark+"'"); err != nil {
		return n, fmt.Errorf("comment on schema %s: %w", s, err)
	}
	logf("%s: seeded %d invoices and %d payments in %.1fs", p.name, n[0], n[1], time.Since(start).Seconds())
	return n, nil
}

// defineHelpers (re)defines, in schema s, what lets Postgres run match_sql
// as Kalla does: tolerance_match, and the views left_src and right_src.
// They are defined again on every run, so that a reused schema cannot
// carry an edited definition.
func defineHelpers(ctx context.Context, conn *pgx.Conn, s string) error {
	for _, q := range []string{
		fmt.Sprintf(toleranceMatchSQL, s),
		"CREATE OR REPLACE VIEW " + s + ".left_src AS SELECT * FROM " + s + ".invoices",
		"CREATE OR REPLACE VIEW " + s + ".right_src AS SELECT * FROM " + s + ".payments",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// newRand is the generator's random source for the idx'th pattern.
func newRand(idx int) *rand.Rand { return rand.New(rand.NewPCG(20260101, uint64(idx))) }

// seedTable creates table and streams gen's rows into it. COPY FREEZE into
// a table created in the same transaction writes the rows frozen, so the
// first reader does not pay for setting hint bits; the primary key (the
// first column) is built after the load, and ANALYZE gives Postgres'
// planner statistics.
func seedTable(ctx context.Context, pgURL, table, columns string, gen func(*rowWriter)) (int64, error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", table, columns)); err != nil {
		return 0, fmt.Errorf("create %s: %w", table, err)
	}
	pr, pw := io.Pipe()
	go func() {
		w := newRowWriter(pw)
		gen(w)
		pw.CloseWithError(w.Flush())
	}()
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, "COPY "+table+" FROM STDIN (FORMAT csv, FREEZE)")
	pr.CloseWithError(errors.New("copy ended")) // unblocks the generator if COPY failed
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", table, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	key, _, _ := strings.Cut(columns, " ")
	for _, q := range []string{
		fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", table, key),
		"ANALYZE " + table,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	return tag.RowsAffected(), nil
}

// counts are a reconciliation's sizes, as Kalla's completion payload and
// Postgres both report them.
type counts struct {
	Matched        int64 `json:"matched"`
	UnmatchedLeft  int64 `json:"unmatched_left"`
	UnmatchedRight int64 `json:"unmatched_right"`
	Left           int64 `json:"left"`
	Right          int64 `json:"right"`
}

// postgresRun has Postgres reconcile p itself with the same match_sql: the
// match into a temporary table, then the rows of each side whose key is in
// no match, counted (Kalla's own definition of unmatched). It writes no
// files, so it does less work than Kalla. Its settings (work_mem, parallel
// workers) are the server's.
func postgresRun(ctx context.Context, pgURL string, p *pattern) (counts, float64, error) {
	var c counts
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return c, 0, fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(context.Background())
	s := pgx.Identifier{schema(p)}.Sanitize()
	if _, err := conn.Exec(ctx, "SET search_path TO "+s); err != nil {
		return c, 0, err
	}
	start := time.Now()
	tag, err := conn.Exec(ctx, "CREATE TEMP TABLE schedbench_matched AS "+p.sql)
	if err != nil {
		return c, 0, fmt.Errorf("match_sql in Postgres: %w", err)
	}
	c.Matched = tag.RowsAffected()
	queries := []struct {
		sql string
		n   *int64
	}{
		{"ANALYZE pg_temp.schedbench_matched", nil},
		{"SELECT count(*) FROM invoices src WHERE NOT EXISTS (SELECT 1 FROM pg_temp.schedbench_matched m WHERE m.invoice_id = src.invoice_id)", &c.UnmatchedLeft},
		{"SELECT count(*) FROM payments src WHERE NOT EXISTS (SELECT 1 FROM pg_temp.schedbench_matched m WHERE m.payment_id = src.payment_id)", &c.UnmatchedRight},
	}
	for _, q := range queries {
		if q.n == nil {
			_, err = conn.Exec(ctx, q.sql)
		} else {
			err = conn.QueryRow(ctx, q.sql).Scan(q.n)
		}
		if err != nil {
			return c, 0, fmt.Errorf("%s: %w", q.sql, err)
		}
	}
	secs := time.Since(start).Seconds()
	for _, q := range []struct {
		sql string
		n   *int64
	}{{"SELECT count(*) FROM invoices", &c.Left}, {"SELECT count(*) FROM payments", &c.Right}} {
		if err := conn.QueryRow(ctx, q.sql).Scan(q.n); err != nil {
			return c, 0, fmt.Errorf("%s: %w", q.sql, err)
		}
	}
	return c, secs, nil
}
