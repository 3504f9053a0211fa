package kalla

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// rowReadingSession is a Session that says which sources it stages from
// rows our code streams (Postgres) rather than from files its engine reads
// itself (duckdb.Session does).
type rowReadingSession interface {
	ReadsRows(alias string) bool
}

// stage loads every source of job into sess and returns the row counts.
// Sources streamed as rows (Postgres) are staged at once: each is bound by
// its server, the network and our decoding rather than by the engine, and
// staging them together overlaps the two servers' work. (Where Postgres
// shares the engine's CPUs both are busy either way and it gains little;
// docs/benchmarks.md has the figures.) Files the engine reads itself
// already use every engine thread, and are staged in turn. The first error
// cancels the other load and is returned, naming its source; report
// receives progress, one call at a time.
func (r *Runner) stage(ctx context.Context, sess Session, job *Job, log *slog.Logger, report func(Progress)) ([2]int64, error) {
	var (
		counts [2]int64
		mu     sync.Mutex // serializes report and StageDone, and guards rows and done
		rows   [2]int64
		done   int
	)
	total := func() int64 { return rows[0] + rows[1] }
	load := func(ctx context.Context, i int) error {
		s := job.Sources[i]
		start := time.Now()
		n, err := sess.Load(ctx, s.Alias, func(n int64) {
			mu.Lock()
			defer mu.Unlock()
			rows[i] = n
			report(Progress{Stage: StageStaging, Progress: float64(done) / 2, Source: s.Alias, RowsRead: total()})
		})
		if err != nil {
			return fmt.Errorf("read source %q (%s): %w", s.Alias, RedactURI(s.URI), err)
		}
		elapsed := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		counts[i], rows[i] = n, n
		done++
		log.Info("source staged", "alias", s.Alias, "rows", n, "elapsed", elapsed.Round(time.Millisecond))
		r.stageDone(StageTime{Stage: StageStaging, Source: s.Alias, Elapsed: elapsed})
		return nil
	}

	rs, ok := sess.(rowReadingSession)
	if !ok || !rs.ReadsRows(job.Sources[0].Alias) || !rs.ReadsRows(job.Sources[1].Alias) {
		for i, s := range job.Sources {
			mu.Lock()
			report(Progress{Stage: StageStaging, Progress: float64(done) / 2, Source: s.Alias, RowsRead: total()})
			mu.Unlock()
			if err := load(ctx, i); err != nil {
				return counts, err
			}
		}
	} else {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var (
			wg       sync.WaitGroup
			errMu    sync.Mutex
			firstErr error
		)
		mu.Lock()
		for _, s := range job.Sources {
			report(Progress{Stage: StageStaging, Progress: 0, Source: s.Alias})
		}
		mu.Unlock()
		for i := range job.Sources {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := load(ctx, i); err != nil {
					errMu.Lock()
					defer errMu.Unlock()
					// The other load, cancelled by this one, fails too:
					// the first error is the cause.
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return counts, firstErr
		}
	}
	report(Progress{Stage: StageStaging, Progress: 1, RowsRead: total()})
	return counts, nil
}
