package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// seedFlags are the seed executor's flags that mean nothing to kallad. The
// seed's scripts (benchmarks/run_cluster_benchmark.sh) and compose files pass
// them, so they are accepted, and logged as ignored, rather than refused.
type seedFlags struct{ names []string }

// seedExecutorFlags registers the seed executor's Ballista port flags:
// --flight-port (Arrow Flight, how Ballista executors exchanged data) and
// --grpc-port (the executor's own gRPC service).
func seedExecutorFlags(fs *flag.FlagSet) seedFlags {
	names := []string{"flight-port", "grpc-port"}
	for _, n := range names {
		fs.Int(n, 0, "ignored; accepted for the seed's scripts (an executor listens on no data port: it exchanges data through --staging-path)")
	}
	return seedFlags{names}
}

// logIgnored logs, once, the seed flags that were given.
func (s seedFlags) logIgnored(fs *flag.FlagSet, logger *slog.Logger) {
	var given []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(s.names, f.Name) {
			given = append(given, "--"+f.Name+"="+f.Value.String())
		}
	})
	if len(given) > 0 {
		logger.Info("ignoring the seed's executor port flags: a kallad executor listens on no Flight or gRPC port; it reaches the scheduler through its cluster port and exchanges data through the staging path",
			"flags", strings.Join(given, " "))
	}
}

// seedLogNotifier logs, for every job that ends, the line the seed's
// scheduler logged (`Run <run_id> completed: N matched, N unmatched_left,
// N unmatched_right` or `Run <run_id> failed: <error>`), then hands the
// event to the next notifier. The seed's benchmarks/run_benchmark.sh waits
// for these lines in the scheduler's log. A cancelled job logs a failed line
// too, so that a script waiting for one of the two does not wait forever.
type seedLogNotifier struct {
	next  kalla.Notifier
	store kalla.JobStore
	log   *slog.Logger
}

var _ kalla.Notifier = seedLogNotifier{}

// Progress implements kalla.Notifier.
func (n seedLogNotifier) Progress(callbackURL string, p kalla.Progress) {
	n.next.Progress(callbackURL, p)
}

// Finished implements kalla.Notifier. It reads the final record from the
// job store (local to the scheduler, or its NATS cluster), not from the
// callback receiver, so a slow receiver does not delay it.
func (n seedLogNotifier) Finished(runID string) {
	n.logLine(runID)
	n.next.Finished(runID)
}

func (n seedLogNotifier) logLine(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := n.store.Get(ctx, runID)
	if err != nil {
		n.log.Warn("read the finished job for its completion line", "run_id", runID, "err", err)
		return
	}
	switch {
	case rec.State == kalla.JobCompleted && rec.Result != nil:
		r := rec.Result
		n.log.Info(fmt.Sprintf("Run %s completed: %d matched, %d unmatched_left, %d unmatched_right",
			runID, r.MatchedCount, r.UnmatchedLeftCount, r.UnmatchedRightCount), "run_id", runID)
	case rec.State.Final():
		msg := string(rec.State)
		if rec.Error != nil {
			msg = rec.Error.Error
		}
		n.log.Warn(fmt.Sprintf("Run %s failed: %s", runID, msg), "run_id", runID, "state", rec.State)
	}
}
