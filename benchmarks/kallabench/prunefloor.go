package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// pruneFloorVariant names the variant that measures the floor under column
// pruning (issue 16): what Postgres needs to hand over only the columns the
// match reads, and then, in the same snapshot, every column of the rows the
// match leaves unmatched, fetched by key. A pruned Kalla run cannot be
// faster than this; when it is not below pg-copy-floor, pruning cannot pay.
const pruneFloorVariant = "pg-prune-floor"

// pruneFloorNote describes the variant in the report.
const pruneFloorNote = "COPY (FORMAT binary) of the match's columns of both tables, then every column of the unmatched rows " +
	"by key (= ANY(array)), one snapshot and stream per table, to /dev/null: the floor under column pruning"

// pruneTable is one table as the pruned read sees it.
type pruneTable struct {
	name   string
	needed string  // the columns the benchmark's match_sql and keys read
	key    string  // the primary key the unmatched rows are fetched by
	keys   []int64 // the unmatched rows' keys (benchdata.UnmatchedKeys)
}

// runPruneFloor reads both tables at once, each on one connection in one
// REPEATABLE READ transaction: the needed columns of every row, then the
// whole unmatched rows by key. The keys come from the generator's design,
// so no match is run. Its phases are each table's two copies. It fails
// unless each copy yields the rows d holds and the design leaves
// unmatched.
func runPruneFloor(ctx context.Context, p *benchdata.Postgres, d *benchdata.Set) (benchRun, error) {
	var run benchRun
	inv, pay := benchdata.UnmatchedKeys(d.Invoices)
	tables := []pruneTable{
		{benchdata.InvoicesTable, "invoice_id, amount", "invoice_id", inv},
		{benchdata.PaymentsTable, "payment_id, invoice_ref, amount", "payment_id", pay},
	}
	want := []int64{d.Invoices, d.Payments}
	// The array literals are built before the clock starts: a pruned
	// Kalla would send keys it already holds.
	lists := make([]string, len(tables))
	for i, t := range tables {
		lists[i] = int8Array(t.keys)
	}
	secs := make([][2]float64, len(tables))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range tables {
		g.Go(func() error {
			conn, err := pgx.Connect(gctx, p.URL)
			if err != nil {
				return fmt.Errorf("connect to --postgres: %w", err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(gctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
				return fmt.Errorf("begin on %s: %w", t.name, err)
			}
			ident := pgx.Identifier{p.Schema, t.name}.Sanitize()
			for step, c := range []struct {
				sql  string
				rows int64
			}{
				{fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT (FORMAT binary)", t.needed, ident), want[i]},
				{fmt.Sprintf("COPY (SELECT * FROM %s WHERE %s = ANY('%s'::int8[])) TO STDOUT (FORMAT binary)", ident, t.key, lists[i]), int64(len(t.keys))},
			} {
				copyStart := time.Now()
				tag, err := conn.PgConn().CopyTo(gctx, io.Discard, c.sql)
				if err != nil {
					return fmt.Errorf("copy %s (step %d): %w", t.name, step+1, err)
				}
				if tag.RowsAffected() != c.rows {
					return fmt.Errorf("copy %s (step %d): %d rows, want %d", t.name, step+1, tag.RowsAffected(), c.rows)
				}
				secs[i][step] = time.Since(copyStart).Seconds()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return run, err
	}
	run.Seconds = time.Since(start).Seconds()
	for i, t := range tables {
		run.Phases = append(run.Phases,
			benchPhase{Name: "copy needed " + t.name, Seconds: secs[i][0]},
			benchPhase{Name: "fetch unmatched " + t.name, Seconds: secs[i][1]})
	}
	return run, nil
}

// int8Array is keys as the text of a Postgres int8[] literal.
func int8Array(keys []int64) string {
	var b strings.Builder
	b.Grow(len(keys) * 9)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(k, 10))
	}
	b.WriteByte('}')
	return b.String()
}
