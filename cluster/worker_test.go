package cluster

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kalla-dev/kalla"
)

func TestWorkerCompletesJob(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, b.queue)
	if err != nil {
		t.Fatal(err)
	}
	runner := &fakeRunner{fn: succeed}
	notes := &recNotifier{}
	b.worker(t, WorkerConfig{Runner: runner, Notifier: notes, Metrics: metrics, MaxJobs: 2})

	runID := b.submit(t, "http://receiver.invalid")
	rec := b.waitState(t, runID, kalla.JobCompleted)
	if rec.Result == nil || rec.Result.MatchedCount != 7 {
		t.Fatalf("result = %+v", rec.Result)
	}
	if len(rec.Attempts) != 1 || rec.Attempts[0].Outcome != "completed" || rec.StartedAt == nil || rec.FinishedAt == nil {
		t.Fatalf("record = %+v", rec)
	}
	waitFor(t, "finished notice", func() bool { return notes.finishedCount(runID) == 1 })
	if notes.progressCount(runID) < 2 {
		t.Fatalf("progress reports = %d, want one per stage", notes.progressCount(runID))
	}
	if got := testutil.ToFloat64(metrics.Completed); got != 1 {
		t.Errorf("completed = %v", got)
	}
	if got := testutil.ToFloat64(metrics.RowsProcessed); got != 19 {
		t.Errorf("rows processed = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "kallad_stage_duration_seconds", "kallad_queue_depth"); err != nil || n != 3 {
		t.Errorf("gathered %d series (%v), want staging and matching durations and the queue depth", n, err)
	}
	waitFor(t, "queue to empty", func() bool {
		st, err := b.queue.Stats(context.Background())
		return err == nil && st.Depth == 0
	})
}

func TestWorkerFailsJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		return nil, &kalla.StageError{Stage: kalla.StageMatching, Err: errors.New("boom")}
	}}
	notes := &recNotifier{}
	b.worker(t, WorkerConfig{Runner: runner, Notifier: notes})
	runID := b.submit(t, "http://receiver.invalid")
	rec := b.waitState(t, runID, kalla.JobFailed)
	if rec.Error == nil || rec.Error.Stage != kalla.StageMatching || rec.Error.Error != "boom" {
		t.Fatalf("error = %+v", rec.Error)
	}
	if rec.Attempts[0].Error != "boom" {
		t.Fatalf("attempt = %+v, want its error kept", rec.Attempts[0])
	}
	waitFor(t, "finished notice", func() bool { return notes.finishedCount(runID) == 1 })
	if runner.count(runID) != 1 {
		t.Fatalf("ran %d times: a job error is final", runner.count(runID))
	}
}

func TestWorkerCancelsRunningJob(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	started := make(chan string, 1)
	notes := &recNotifier{}
	b.worker(t, WorkerConfig{Runner: &fakeRunner{fn: blockUntilCancelled(started)}, Notifier: notes, ProgressInterval: 20 * time.Millisecond})
	runID := b.submit(t, "http://receiver.invalid")
	<-started
	// The runner reported once; the ticker repeats it while the stage lasts.
	waitFor(t, "progress repeated during a long stage", func() bool { return notes.progressCount(runID) >= 3 })
	waitFor(t, "progress saved in the record", func() bool {
		rec, err := b.store.Get(context.Background(), runID)
		return err == nil && rec.Progress != nil && rec.Progress.Stage == kalla.StageStaging
	})
	if _, err := kalla.UpdateJob(context.Background(), b.store, runID, func(r *kalla.JobRecord) error {
		r.CancelRequested = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rec := b.waitState(t, runID, kalla.JobCancelled)
	if rec.Error == nil || rec.Error.Stage != kalla.StageCancelled {
		t.Fatalf("error = %+v, want stage cancelled", rec.Error)
	}
	waitFor(t, "finished notice", func() bool { return notes.finishedCount(runID) == 1 })
}

// A runner that dies mid-job (it took the task and stopped heartbeating) is
// replaced: the task is redelivered after AckWait and the job runs again.
func TestWorkerReclaimsJobOfDeadRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{AckWait: 500 * time.Millisecond, MaxAttempts: 3})
	runID := b.submit(t, "")
	dead := b.takeAndAbandon(t)
	if dead.RunID != runID {
		t.Fatalf("took %s, want %s", dead.RunID, runID)
	}

	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := &fakeRunner{fn: succeed}
	b.worker(t, WorkerConfig{Runner: runner, Metrics: metrics})
	rec := b.waitState(t, runID, kalla.JobCompleted)
	if len(rec.Attempts) != 2 || rec.Attempts[0].Outcome != "lost" || rec.Attempts[1].Outcome != "completed" {
		t.Fatalf("attempts = %+v, want lost then completed", rec.Attempts)
	}
	if got := testutil.ToFloat64(metrics.Reclaimed); got != 1 {
		t.Errorf("reclaimed = %v, want 1", got)
	}
	if runner.count(runID) != 1 {
		t.Errorf("ran %d times", runner.count(runID))
	}
}

// After the last attempt's runner dies, the job fails once, with the
// attempts' errors kept, and is not run again.
func TestWorkerGivesUpAfterLastAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{AckWait: 300 * time.Millisecond, MaxAttempts: 2})
	runID := b.submit(t, "http://receiver.invalid")
	b.takeAndAbandon(t)
	b.takeAndAbandon(t)

	runner := &fakeRunner{fn: succeed}
	notes := &recNotifier{}
	b.worker(t, WorkerConfig{Runner: runner, Notifier: notes})
	rec := b.waitState(t, runID, kalla.JobFailed)
	if rec.Error == nil || !strings.Contains(rec.Error.Error, "gave up after 2 attempts") {
		t.Fatalf("error = %+v", rec.Error)
	}
	if len(rec.Attempts) != 2 || rec.Attempts[1].Outcome != "lost" {
		t.Fatalf("attempts = %+v", rec.Attempts)
	}
	waitFor(t, "finished notice", func() bool { return notes.finishedCount(runID) == 1 })
	if runner.count(runID) != 0 {
		t.Fatalf("ran %d times after the last attempt", runner.count(runID))
	}
}

// takeAndAbandon plays a runner that takes the next task, marks its job
// running and dies without acking.
func (b *testBundle) takeAndAbandon(t *testing.T) *Task {
	t.Helper()
	var task *Task
	waitFor(t, "a task", func() bool {
		var err error
		task, err = b.queue.next(context.Background(), 200*time.Millisecond)
		return err == nil
	})
	w := &Worker{cfg: WorkerConfig{Queue: b.queue, Store: b.store}}
	p, _, _, err := w.claim(task)
	if err != nil || p != planRun {
		t.Fatalf("claim = %v, %v", p, err)
	}
	return task
}

// A job stopped by shutdown is queued again and runs at once after the
// restart of the server, not after its AckWait (a minute here, longer than
// waitState waits).
func TestWorkerRequeuesAtShutdown(t *testing.T) {
	t.Parallel()
	qcfg := QueueConfig{AckWait: time.Minute}
	b := setup(t, qcfg)
	started := make(chan string, 1)
	w, err := NewWorker(WorkerConfig{
		Store: b.store, Queue: b.queue, Logger: b.logger, FetchWait: 200 * time.Millisecond,
		Runner:          &fakeRunner{fn: blockUntilCancelled(started)},
		ShutdownTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	runID := b.submit(t, "")
	<-started
	w.Stop()
	rec, err := b.store.Get(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != kalla.JobQueued || rec.Attempts[0].Outcome != "requeued" {
		t.Fatalf("after shutdown: state %s, attempts %+v", rec.State, rec.Attempts)
	}
	b.stop()
	b.start(t, qcfg)

	runner := &fakeRunner{fn: succeed}
	b.worker(t, WorkerConfig{Runner: runner})
	rec = b.waitState(t, runID, kalla.JobCompleted)
	if len(rec.Attempts) != 2 {
		t.Fatalf("attempts = %+v", rec.Attempts)
	}
}

// Tasks survive a restart of the NATS server (the scheduler's crash).
func TestWorkerRunsJobAcceptedBeforeRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	runID := b.submit(t, "")
	b.stop()
	b.start(t, QueueConfig{})
	b.worker(t, WorkerConfig{Runner: &fakeRunner{fn: succeed}})
	b.waitState(t, runID, kalla.JobCompleted)
}

func TestWorkerDropsDuplicateTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	release := make(chan struct{})
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		<-release
		return succeed(ctx, job, progress)
	}}
	runID := b.submit(t, "")
	// A second task for the same run, as a resubmission after the
	// duplicate window would publish.
	if _, err := b.js.Publish(context.Background(), b.queue.cfg.Subject, []byte(`{"run_id":"`+runID+`"}`)); err != nil {
		t.Fatal(err)
	}
	b.worker(t, WorkerConfig{Runner: runner, MaxJobs: 2})
	waitFor(t, "both tasks handled", func() bool {
		st, err := b.queue.Stats(context.Background())
		return err == nil && st.Depth == 0
	})
	close(release)
	b.waitState(t, runID, kalla.JobCompleted)
	waitFor(t, "stream empty", func() bool {
		info, err := b.queue.stream.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	if n := runner.count(runID); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}

func TestWorkerRespectsMaxJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	var running, peak atomic.Int64
	release := make(chan struct{})
	runner := &fakeRunner{fn: func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return succeed(ctx, job, progress)
	}}
	w := b.worker(t, WorkerConfig{Runner: runner, MaxJobs: 2})
	var ids []string
	for range 4 {
		ids = append(ids, b.submit(t, ""))
	}
	waitFor(t, "two jobs running", func() bool { return running.Load() == 2 })
	if !w.Saturated() {
		t.Error("worker with every slot taken is not saturated")
	}
	// The consumer's pending count may lag the deliveries on a busy
	// machine; two jobs must be left waiting, and stay so while both
	// slots are taken.
	waitFor(t, "two jobs waiting", func() bool {
		st, err := b.queue.Stats(context.Background())
		return err == nil && st.Depth == 2
	})
	if running.Load() != 2 {
		t.Errorf("%d jobs running, want 2", running.Load())
	}
	close(release)
	for _, id := range ids {
		b.waitState(t, id, kalla.JobCompleted)
	}
	if peak.Load() != 2 {
		t.Fatalf("peak concurrency = %d, want 2", peak.Load())
	}
}

func TestWorkerConfigValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{AckWait: time.Second})
	for name, cfg := range map[string]WorkerConfig{
		"no store":       {Queue: b.queue, Runner: &fakeRunner{}},
		"no queue":       {Store: b.store, Runner: &fakeRunner{}},
		"no runner":      {Store: b.store, Queue: b.queue},
		"negative jobs":  {Store: b.store, Queue: b.queue, Runner: &fakeRunner{}, MaxJobs: -1},
		"slow heartbeat": {Store: b.store, Queue: b.queue, Runner: &fakeRunner{}, HeartbeatInterval: 2 * time.Second},
	} {
		if _, err := NewWorker(cfg); err == nil {
			t.Errorf("%s: NewWorker accepted %+v", name, cfg)
		}
	}
}
