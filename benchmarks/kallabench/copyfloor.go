package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// copyFloorVariant names the variant that measures how fast Postgres can
// hand over the two tables at all: the floor under any Kalla run from
// Postgres, which must at least read every row.
const copyFloorVariant = "pg-copy-floor"

// copyFloorNote describes the variant in the report.
const copyFloorNote = "COPY (FORMAT binary) of both whole tables, two parallel streams, to /dev/null: the floor under kalla-postgres"

// runCopyFloor copies both whole tables out of Postgres at once, one stream
// each, in binary (what Kalla's Postgres source reads), and drops the bytes.
// Its phases are each table's copy.
// It fails unless each table yields the rows d holds.
func runCopyFloor(ctx context.Context, p *benchdata.Postgres, d *benchdata.Set) (benchRun, error) {
	var run benchRun
	tables := []string{benchdata.InvoicesTable, benchdata.PaymentsTable}
	want := []int64{d.Invoices, d.Payments}
	secs := make([]float64, len(tables))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range tables {
		g.Go(func() error {
			conn, err := pgx.Connect(gctx, p.URL)
			if err != nil {
				return fmt.Errorf("connect to --postgres: %w", err)
			}
			defer conn.Close(context.Background())
			ident := pgx.Identifier{p.Schema, t}.Sanitize()
			copyStart := time.Now()
			tag, err := conn.PgConn().CopyTo(gctx, io.Discard, "COPY "+ident+" TO STDOUT (FORMAT binary)")
			if err != nil {
				return fmt.Errorf("copy %s: %w", t, err)
			}
			if tag.RowsAffected() != want[i] {
				return fmt.Errorf("copy %s: %d rows, want %d", t, tag.RowsAffected(), want[i])
			}
			secs[i] = time.Since(copyStart).Seconds()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return run, err
	}
	run.Seconds = time.Since(start).Seconds()
	for i, t := range tables {
		run.Phases = append(run.Phases, benchPhase{Name: "copy " + t, Seconds: secs[i]})
	}
	return run, nil
}

// floorRatios sets VsFloor of the variants that read from Postgres (and of
// the pruned floor): their best time over the COPY floor's best.
func (r *benchReport) floorRatios() {
	var floor float64
	for _, v := range r.Variants {
		if v.Name == copyFloorVariant {
			floor = v.Best
		}
	}
	if floor == 0 {
		return
	}
	for _, v := range r.Variants {
		if v.Best > 0 && (v.Name == "kalla-postgres" || v.Name == copyFloorVariant || v.Name == pruneFloorVariant) {
			v.VsFloor = v.Best / floor
		}
	}
}
