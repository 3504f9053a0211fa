package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// runPostgresNative has Postgres do the reconciliation itself: the match
// into a temporary table, then the two anti-joins, counted. It writes no
// Parquet (Postgres cannot), so it does less work than the other variants.
// Server settings (work_mem, parallel workers) are the server's own.
func runPostgresNative(ctx context.Context, p *benchdata.Postgres) (benchRun, error) {
	var run benchRun
	start := time.Now()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return run, fmt.Errorf("connect to --postgres: %w", err)
	}
	defer conn.Close(context.Background())
	inv := pgx.Identifier{p.Schema, benchdata.InvoicesTable}.Sanitize()
	pay := pgx.Identifier{p.Schema, benchdata.PaymentsTable}.Sanitize()
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
