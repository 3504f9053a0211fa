package cluster

import (
	"context"
	"log/slog"
	"time"

	"github.com/kalla-dev/kalla/internal/startstop"
)

// ExecutorTracker keeps a gauge at the number of live executors and logs
// their arrivals and departures, looking every second, from Start to Stop.
type ExecutorTracker struct {
	startstop.Base
	members *Members
	gauge   interface{ Set(float64) }
	log     *slog.Logger
	every   time.Duration
	done    chan struct{}
}

// NewExecutorTracker tracks the executors of m; gauge may be nil.
func NewExecutorTracker(m *Members, gauge interface{ Set(float64) }, log *slog.Logger) *ExecutorTracker {
	if log == nil {
		log = slog.Default()
	}
	return &ExecutorTracker{members: m, gauge: gauge, log: log, every: time.Second}
}

// Start looks at once, then every second, in the background.
func (t *ExecutorTracker) Start(ctx context.Context) error {
	return t.StartOnce(ctx, "executor tracker", func(ctx context.Context) error {
		t.done = make(chan struct{})
		go t.loop(ctx)
		return nil
	})
}

// Stop stops looking and waits for a look under way.
func (t *ExecutorTracker) Stop() {
	t.StopOnce(func(cancel context.CancelCauseFunc) {
		cancel(nil)
		<-t.done
	})
}

func (t *ExecutorTracker) loop(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	known := map[string]bool{}
	for {
		if execs, err := t.members.Executors(ctx); err == nil {
			now := map[string]bool{}
			for _, e := range execs {
				now[e.ID] = true
				if !known[e.ID] {
					t.log.Info("executor joined", "executor", e.ID, "host", e.Host)
				}
			}
			for id := range known {
				if !now[id] {
					t.log.Info("executor gone", "executor", id)
				}
			}
			known = now
			if t.gauge != nil {
				t.gauge.Set(float64(len(execs)))
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
