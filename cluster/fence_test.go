package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kalla-dev/kalla"
)

// A running attempt whose job another runner took over (its claim is in
// the record) is stopped with errLostJob and leaves no trace: no outcome
// in the record, no final notice, no metric, and
// the task is not acknowledged (it is the new owner's).
func TestWorkerStopsAttemptThatLostItsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{AckWait: time.Minute})
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, b.queue)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	var mu sync.Mutex
	var cause error
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		progress(kalla.Progress{Stage: kalla.StageStaging})
		started <- job.RunID
		<-ctx.Done()
		mu.Lock()
		cause = context.Cause(ctx)
		mu.Unlock()
		return nil, &kalla.StageError{Stage: kalla.StageCancelled, Err: kalla.ErrCancelled}
	}}
	notes := &recNotifier{}
	b.worker(t, WorkerConfig{Runner: runner, Notifier: notes, Metrics: metrics, ProgressInterval: 20 * time.Millisecond})
	runID := b.submit(t, "http://receiver.invalid")
	<-started

	// Another runner's claim, as worker.claim writes it.
	taken, err := kalla.UpdateJob(context.Background(), b.store, runID, func(r *kalla.JobRecord) error {
		now := time.Now().UTC()
		if err := r.Move(kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeLost, At: now, Reason: "no heartbeats"}); err != nil {
			return err
		}
		return r.Move(kalla.Move{To: kalla.JobRunning, At: now, TaskSeq: r.TaskSeq})
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the attempt to stop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return cause != nil
	})
	mu.Lock()
	if !errors.Is(cause, errLostJob) {
		t.Errorf("cancel cause %v, want errLostJob", cause)
	}
	mu.Unlock()
	waitFor(t, "the worker to let go of the job", func() bool { return testutil.ToFloat64(metrics.ActiveJobs) == 0 })

	rec, err := b.store.Get(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Revision != taken.Revision || rec.State != kalla.JobRunning || len(rec.Attempts) != 2 || rec.Attempts[1].EndedAt != nil {
		t.Errorf("record after the lost attempt stopped: rev %d (want %d) %s %+v", rec.Revision, taken.Revision, rec.State, rec.Attempts)
	}
	if n := notes.finishedCount(runID); n != 0 {
		t.Errorf("%d final notices from the lost attempt", n)
	}
	if c, f := testutil.ToFloat64(metrics.Completed), testutil.ToFloat64(metrics.Failed)+testutil.ToFloat64(metrics.Cancelled); c+f != 0 {
		t.Errorf("the lost attempt was counted: %v completed, %v failed or cancelled", c, f)
	}
	st, err := b.queue.cons.Info(context.Background())
	if err != nil || st.NumAckPending != 1 {
		t.Errorf("task acknowledged by the lost attempt: %d pending acks (%v), want 1", st.NumAckPending, err)
	}
}
