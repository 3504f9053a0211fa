package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/startstop"
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Store  *Store
	Queue  *Queue
	Runner kalla.JobRunner
	// Notifier sends the callbacks; nil sends none.
	Notifier kalla.Notifier
	// Metrics, if not nil, count the jobs this worker runs.
	Metrics *Metrics
	// MaxJobs is how many jobs run at once in this process; the rest wait
	// in the queue.
	MaxJobs int
	// JobTimeout bounds each attempt of a job; one that runs longer is
	// stopped and fails for good, with an error naming the limit. 0 sets no
	// bound.
	JobTimeout time.Duration
	// HeartbeatInterval is how often a running task's ack deadline is
	// pushed back; it defaults to a third of the queue's AckWait.
	HeartbeatInterval time.Duration
	// ProgressInterval is how often the latest progress is re-sent and
	// saved while a job runs, so a receiver hears from a long stage at
	// least this often. Default 1s.
	ProgressInterval time.Duration
	// ShutdownTimeout is how long Stop lets running jobs finish before it
	// stops them and puts them back in the queue. Default 20s.
	ShutdownTimeout time.Duration
	// FetchWait bounds one wait for a task. Default 5s.
	FetchWait time.Duration
	Logger    *slog.Logger
}

func (c *WorkerConfig) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("worker config: Store is required")
	case c.Queue == nil:
		return errors.New("worker config: Queue is required")
	case c.Runner == nil:
		return errors.New("worker config: Runner is required")
	case c.MaxJobs < 0:
		return fmt.Errorf("worker config: MaxJobs must be positive, got %d", c.MaxJobs)
	case c.JobTimeout < 0:
		return fmt.Errorf("worker config: negative JobTimeout %s", c.JobTimeout)
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = 1
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.Queue.cfg.AckWait / 3
	}
	if c.HeartbeatInterval >= c.Queue.cfg.AckWait {
		return fmt.Errorf("worker config: HeartbeatInterval %s must be shorter than the queue's AckWait %s", c.HeartbeatInterval, c.Queue.cfg.AckWait)
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.FetchWait == 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.Notifier == nil {
		c.Notifier = nopNotifier{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

type nopNotifier struct{}

func (nopNotifier) Progress(string, kalla.Progress) {}
func (nopNotifier) Finished(string)                 {}

// errShutdown is the cause of a job's cancellation when the worker stops.
var errShutdown = errors.New("scheduler shutting down")

// Worker takes tasks from the queue and runs their jobs, at most MaxJobs at
// a time, keeping each job's record in the store up to date.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger

	active atomic.Int64
	// slots holds a token per job slot in use (TakeSlot), and one while
	// the loop waits for a task; dry counts TakeSlot's.
	slots   chan struct{}
	dry     atomic.Int64
	mu      sync.Mutex
	running map[string]uint64 // run id → seq of the task running it here

	startstop.Base
	// jobsCtx is the service context: the jobs run on it until Stop.
	jobsCtx   context.Context
	stopFetch context.CancelFunc
	loopDone  chan struct{}
	jobs      sync.WaitGroup
}

// NewWorker validates cfg.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("component", "worker"), running: map[string]uint64{},
		slots: make(chan struct{}, cfg.MaxJobs)}, nil
}

// Start queues again any accepted job whose task may have been lost, then
// starts taking tasks. It returns at once. Taking tasks stops when ctx ends
// or at Stop; the jobs taken run on until Stop.
func (w *Worker) Start(ctx context.Context) error {
	return w.StartOnce(ctx, "worker", func(jobsCtx context.Context) error {
		if err := w.requeueUnqueued(ctx); err != nil {
			return err
		}
		w.jobsCtx = jobsCtx
		var fetchCtx context.Context
		fetchCtx, w.stopFetch = context.WithCancel(ctx)
		w.loopDone = make(chan struct{})
		go w.loop(fetchCtx)
		return nil
	})
}

// Stop stops taking tasks, waits up to ShutdownTimeout for running jobs to
// finish, then stops the rest and puts them back in the queue.
func (w *Worker) Stop() {
	w.StopOnce(func(cancelJobs context.CancelCauseFunc) {
		w.stopFetch()
		<-w.loopDone
		done := make(chan struct{})
		go func() { w.jobs.Wait(); close(done) }()
		timer := time.NewTimer(w.cfg.ShutdownTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			w.log.Warn("jobs still running at shutdown; requeueing them", "active", w.active.Load())
			cancelJobs(errShutdown)
			<-done
		}
	})
}

// Active is the number of jobs running in this process.
func (w *Worker) Active() int { return int(w.active.Load()) }

// Saturated reports whether every job slot of this process is taken.
func (w *Worker) Saturated() bool { return w.Active()+int(w.dry.Load()) >= w.cfg.MaxJobs }

// requeueUnqueued enqueues again the queued jobs that never started: a
// process that died between storing a job and queueing it leaves such a
// job, and a duplicate task is harmless (claim drops it).
func (w *Worker) requeueUnqueued(ctx context.Context) error {
	return w.cfg.Store.Scan(ctx, func(rec *kalla.JobRecord) error {
		if rec.State == kalla.JobQueued && len(rec.Attempts) == 0 {
			return w.cfg.Queue.Enqueue(ctx, rec.RunID)
		}
		return nil
	})
}

func (w *Worker) loop(ctx context.Context) {
	defer close(w.loopDone)
	consume(ctx, w.slots, func(ctx context.Context) (*Task, error) {
		return w.cfg.Queue.next(ctx, w.cfg.FetchWait)
	}, w.handle, &w.jobs, w.log)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// opCtx bounds one bookkeeping call; bookkeeping must outlive a cancelled job.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

type plan int

const (
	planDrop   plan = iota // nothing to do: final, or a duplicate task
	planFinish             // claim made the job final without running it
	planRun
)

func (w *Worker) handle(task *Task) {
	log := w.log.With("run_id", task.RunID, "delivery", task.Delivery)
	w.mu.Lock()
	seq, busy := w.running[task.RunID]
	w.mu.Unlock()
	if busy && seq == task.Seq {
		// Our own task, redelivered because a heartbeat was late: the run
		// goes on, and its ack covers this delivery too.
		log.Warn("task redelivered while its job still runs here")
		return
	}

	p, rec, reclaimed, err := w.claim(task)
	switch {
	case errors.Is(err, kalla.ErrJobNotFound):
		log.Error("task for an unknown job dropped")
		_ = task.Term("no job record")
		return
	case err != nil:
		// Left unacked: redelivered after AckWait.
		log.Error("claim job failed", "err", err)
		return
	}
	switch p {
	case planDrop:
		w.ack(task, log)
	case planFinish:
		w.ack(task, log)
		w.cfg.Metrics.finished(rec.State, rec.Result)
		if rec.State == kalla.JobFailed && w.cfg.Metrics != nil {
			// Only running out of attempts fails a job here.
			w.cfg.Metrics.Exhausted.Inc()
		}
		w.cfg.Notifier.Finished(rec.RunID)
		log.Info("job ended without running", "state", rec.State)
	case planRun:
		if reclaimed && w.cfg.Metrics != nil {
			w.cfg.Metrics.Reclaimed.Inc()
		}
		w.mu.Lock()
		w.running[task.RunID] = task.Seq
		w.mu.Unlock()
		w.run(task, rec, log)
		w.mu.Lock()
		if w.running[task.RunID] == task.Seq {
			delete(w.running, task.RunID)
		}
		w.mu.Unlock()
	}
}

func (w *Worker) ack(task *Task, log *slog.Logger) {
	ctx, cancel := opCtx()
	defer cancel()
	if err := task.Ack(ctx); err != nil {
		log.Warn("ack task failed; it will be redelivered and dropped", "err", err)
	}
}

// claim decides what to do with a delivered task and, unless it is to be
// dropped, moves the job's record accordingly.
func (w *Worker) claim(task *Task) (p plan, rec *kalla.JobRecord, reclaimed bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	maxAttempts := w.cfg.Queue.cfg.MaxAttempts
	rec, err = kalla.UpdateJob(ctx, w.cfg.Store, task.RunID, func(r *kalla.JobRecord) error {
		reclaimed = false
		now := time.Now().UTC()
		if r.State.Final() || (r.State == kalla.JobRunning && r.TaskSeq != task.Seq) {
			p = planDrop
			return kalla.ErrSkipUpdate
		}
		if r.State == kalla.JobRunning {
			// The task's last runner stopped heartbeating: it died. Its
			// attempt is lost, and the job moves on from queued below, in
			// the same update.
			reclaimed = true
			if err := r.Move(kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeLost, At: now,
				Reason: "the runner stopped sending heartbeats (it died or lost its connection)"}); err != nil {
				return err
			}
		}
		switch {
		case r.CancelRequested:
			p = planFinish
			return r.Move(kalla.Move{To: kalla.JobCancelled, At: now})
		case task.Delivery > maxAttempts || r.AttemptsUsed() >= maxAttempts:
			// The record counts too: a crash of the embedded server may
			// lose the queue's count of deliveries made just before it.
			p = planFinish
			return r.Move(kalla.Move{To: kalla.JobFailed, At: now,
				Report: &kalla.ErrorReport{RunID: r.RunID, Stage: lastStage(r), Error: giveUpMessage(r, maxAttempts)}})
		default:
			p = planRun
			return r.Move(kalla.Move{To: kalla.JobRunning, At: now, TaskSeq: task.Seq})
		}
	})
	return p, rec, reclaimed, err
}

func lastStage(r *kalla.JobRecord) kalla.Stage {
	if r.Progress != nil && r.Progress.Stage != "" {
		return r.Progress.Stage
	}
	return kalla.StageValidating
}

func giveUpMessage(r *kalla.JobRecord, maxAttempts int) string {
	last := "the runner died"
	if n := len(r.Attempts); n > 0 && r.Attempts[n-1].Error != "" {
		last = r.Attempts[n-1].Error
	}
	plural := "s"
	if maxAttempts == 1 {
		plural = ""
	}
	return fmt.Sprintf("gave up after %d attempt%s; last attempt: %s", maxAttempts, plural, last)
}
