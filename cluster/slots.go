package cluster

import (
	"context"
	"sync"
	"time"
)

// TakeSlot takes one of the worker's MaxJobs job slots for work that runs
// in this process beside the queued jobs (a dry run, POST
// /api/jobs?dry_run=true), so that such work shares the limit and the
// engine's memory, which is divided among MaxJobs sessions. It reports
// false when every slot runs something, and then takes none.
//
// The worker's loop holds a slot while it waits for a task (up to
// FetchWait); that slot counts as free here: TakeSlot waits for the wait to
// end, and gives up if it ended with a task, which then has the slot.
// release gives the slot back; it may be called more than once.
func (w *Worker) TakeSlot(ctx context.Context) (release func(), ok bool) {
	for {
		n := w.dry.Load()
		if w.active.Load()+n >= int64(w.cfg.MaxJobs) {
			return nil, false
		}
		if w.dry.CompareAndSwap(n, n+1) {
			break
		}
	}
	timer := time.NewTimer(w.cfg.FetchWait + 3*time.Second)
	defer timer.Stop()
	select {
	case w.slots <- struct{}{}:
	case <-timer.C:
		w.dry.Add(-1)
		return nil, false
	case <-ctx.Done():
		w.dry.Add(-1)
		return nil, false
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.ActiveJobs.Inc()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if w.cfg.Metrics != nil {
				w.cfg.Metrics.ActiveJobs.Dec()
			}
			<-w.slots
			w.dry.Add(-1)
		})
	}, true
}
