package cluster

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/kalla-dev/kalla"
)

// TakeSlot takes one of MaxJobs: while it is held, one job fewer runs and
// the rest wait in the queue; with every slot running something it takes
// none; release gives the slot back once, however often it is called.
func TestWorkerTakeSlotSharesMaxJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	var running atomic.Int64
	release := make(chan struct{})
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		running.Add(1)
		defer running.Add(-1)
		<-release
		return succeed(ctx, job, progress)
	}}
	w := b.worker(t, WorkerConfig{Runner: runner, MaxJobs: 2})
	give, ok := w.TakeSlot(t.Context())
	if !ok {
		t.Fatal("an idle worker gave no slot")
	}
	if w.Saturated() {
		t.Error("saturated with one of two slots taken")
	}
	ids := []string{b.submit(t, ""), b.submit(t, "")}
	waitFor(t, "one job running", func() bool { return running.Load() == 1 })
	waitFor(t, "one job waiting", func() bool {
		st, err := b.queue.Stats(context.Background())
		return err == nil && st.Depth == 1
	})
	if !w.Saturated() {
		t.Error("not saturated with a job and a taken slot")
	}
	if _, ok := w.TakeSlot(t.Context()); ok {
		t.Fatal("took a third slot of two")
	}
	if running.Load() != 1 {
		t.Fatalf("%d jobs running beside a taken slot, want 1", running.Load())
	}

	give()
	give()
	waitFor(t, "the waiting job to run", func() bool { return running.Load() == 2 })
	if _, ok := w.TakeSlot(t.Context()); ok {
		t.Fatal("took a slot while two jobs run (release counted twice?)")
	}
	close(release)
	for _, id := range ids {
		b.waitState(t, id, kalla.JobCompleted)
	}
	waitFor(t, "a slot free again", func() bool {
		give, ok := w.TakeSlot(t.Context())
		if ok {
			give()
		}
		return ok
	})
}

// With one slot, which the worker holds while it waits for a task, TakeSlot
// gets it when the wait ends empty, and the next job waits for its release.
func TestWorkerTakeSlotWhileFetching(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	var ran atomic.Int64
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		ran.Add(1)
		return succeed(ctx, job, progress)
	}}
	w := b.worker(t, WorkerConfig{Runner: runner, MaxJobs: 1})
	give, ok := w.TakeSlot(t.Context())
	if !ok {
		t.Fatal("an idle worker with one slot gave none")
	}
	id := b.submit(t, "")
	waitFor(t, "the job in the queue", func() bool {
		st, err := b.queue.Stats(context.Background())
		return err == nil && st.Depth == 1
	})
	if ran.Load() != 0 {
		t.Fatal("a job ran while the only slot was taken")
	}
	give()
	b.waitState(t, id, kalla.JobCompleted)
}
