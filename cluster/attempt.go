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
)

// errLostJob is the cause of an attempt's cancellation when another runner
// took its job over: this process stalled (or lost NATS) past the ack wait,
// the task was redelivered, and the record names the new attempt.
var errLostJob = errors.New("another runner took the job over")

// attempt is one run of a job by this process: it keeps the task alive with
// heartbeats, watches the record for a cancel request and for the loss of
// the job to another runner, relays and saves progress, and records the
// outcome.
//
// Fencing: the record's attempt count and task sequence name the one
// attempt that owns the job (see owns). An attempt that no longer owns it
// stops, publishes nothing (the publish check runs right before the output
// is replaced) and sends no final callback (its outcome is a
// compare-and-set on the record, which fails once another attempt claimed
// it).
type attempt struct {
	w      *Worker
	task   *Task
	number int
	runID  string
	url    string
	log    *slog.Logger

	mu         sync.Mutex
	latest     *kalla.Progress
	saved      *kalla.Progress
	stage      kalla.Stage
	stageStart time.Time
	nudge      chan struct{}
	// lost is set once the record shows another attempt owns the job;
	// stop then cancels the run.
	lost atomic.Bool
	stop context.CancelCauseFunc
	// rev is the latest record revision this attempt wrote (its claim,
	// then its saves). A record read with an older revision is stale (a
	// follower of a replicated store answered, or a watcher whose consumer
	// sits on one), not news of another owner.
	rev atomic.Uint64
}

// errStale asks update to read the record again.
var errStale = errors.New("stale record")

func (w *Worker) run(task *Task, rec *kalla.JobRecord, log *slog.Logger) {
	a := &attempt{
		w: w, task: task, number: len(rec.Attempts), runID: rec.RunID, url: rec.Job.CallbackURL,
		log: log.With("attempt", len(rec.Attempts)), nudge: make(chan struct{}, 1),
	}
	a.rev.Store(rec.Revision)
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.ActiveJobs.Inc()
		defer w.cfg.Metrics.ActiveJobs.Dec()
	}
	w.active.Add(1)
	defer w.active.Add(-1)

	cancelCtx, cancel := context.WithCancelCause(w.jobsCtx)
	defer cancel(nil)
	a.stop = cancel
	jobCtx, stopTimer := kalla.WithJobTimeout(cancelCtx, w.cfg.JobTimeout)
	defer stopTimer()
	helpersCtx, stopHelpers := context.WithCancel(context.Background())
	var helpers sync.WaitGroup
	helpers.Add(3)
	go func() { defer helpers.Done(); a.heartbeat(helpersCtx) }()
	go func() { defer helpers.Done(); a.tick(helpersCtx) }()
	go func() {
		defer helpers.Done()
		err := w.cfg.Store.Watch(helpersCtx, a.runID, func(r *kalla.JobRecord) {
			switch {
			case r.Revision < a.rev.Load():
			case !a.owns(r):
				a.lose()
			case r.CancelRequested:
				cancel(kalla.ErrCancelled)
			}
		})
		if err != nil {
			a.log.Warn("watch for cancel requests failed", "err", err)
		}
	}()

	a.log.Info("job started")
	job := rec.Job
	res, err := w.cfg.Runner.Run(kalla.WithPublishCheck(jobCtx, a.checkOwner), &job, a.progress)
	stopHelpers()
	helpers.Wait()
	a.observeStage("")

	now := time.Now().UTC()
	switch cause := context.Cause(jobCtx); {
	case a.lost.Load() || errors.Is(cause, errLostJob):
		a.log.Warn("lost the job: another runner took it over; this attempt stops without publishing or calling back",
			"reason", "heartbeats to the queue lapsed past the ack wait (a stalled process or a lost NATS connection)")
	case err == nil:
		a.finish(kalla.Move{To: kalla.JobCompleted, Outcome: kalla.OutcomeCompleted, At: now, Result: res})
	case errors.Is(cause, kalla.ErrCancelled):
		a.finish(kalla.Move{To: kalla.JobCancelled, Outcome: kalla.OutcomeCancelled, At: now})
	case errors.Is(cause, errShutdown):
		a.requeue(now)
	case kalla.JobTimeout(jobCtx) != nil:
		stage := kalla.ErrorStage(err)
		if stage == kalla.StageCancelled {
			stage = a.lastStage()
		}
		a.finish(kalla.Move{To: kalla.JobFailed, Outcome: kalla.OutcomeFailed, At: now,
			Report: &kalla.ErrorReport{RunID: a.runID, Stage: stage, Error: kalla.JobTimeout(jobCtx).Error()}})
	default:
		a.finish(kalla.Move{To: kalla.JobFailed, Outcome: kalla.OutcomeFailed, At: now,
			Report: &kalla.ErrorReport{RunID: a.runID, Stage: kalla.ErrorStage(err), Error: kalla.RedactText(err.Error(), job.Secrets()...)}})
	}
}

// lose marks the job lost to another runner and stops the run; the
// attempt reports nothing from then on.
func (a *attempt) lose() {
	a.lost.Store(true)
	if a.stop != nil {
		a.stop(errLostJob)
	}
}

// update applies fn to the job's record while this attempt owns it, and
// reports lost when another attempt does. Writes are compare-and-set on
// the record's revision, so once another runner's claim is stored no write
// of this attempt can land; a stale read is read again.
func (a *attempt) update(ctx context.Context, fn func(*kalla.JobRecord) error) (lost bool, err error) {
	for {
		lost = false
		rec, err := kalla.UpdateJob(ctx, a.w.cfg.Store, a.runID, func(r *kalla.JobRecord) error {
			if r.Revision < a.rev.Load() {
				return errStale
			}
			if !a.owns(r) {
				lost = true
				return kalla.ErrSkipUpdate
			}
			return fn(r)
		})
		switch {
		case errors.Is(err, errStale):
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return false, fmt.Errorf("update job %s: %w", a.runID, ctx.Err())
			}
			continue
		case err != nil:
			return false, err
		case lost:
			a.lose()
		default:
			a.advance(rec.Revision)
		}
		return lost, nil
	}
}

// advance raises rev to r.
func (a *attempt) advance(r uint64) {
	for {
		cur := a.rev.Load()
		if r <= cur || a.rev.CompareAndSwap(cur, r) {
			return
		}
	}
}

// checkOwner is the publish check: it reads the record afresh and refuses
// when another attempt owns the job. A store that does not answer (a NATS
// leader election) is asked again until the context ends: publishing
// without the answer could overwrite the owner's result.
func (a *attempt) checkOwner(ctx context.Context) error {
	for {
		rec, err := a.w.cfg.Store.Get(ctx, a.runID)
		switch {
		case err == nil && rec.Revision < a.rev.Load():
			err = errStale
		case err == nil && a.owns(rec):
			return nil
		case err == nil, errors.Is(err, kalla.ErrJobNotFound):
			a.lose()
			return errLostJob
		}
		a.log.Warn("check the job is still ours before publishing failed; retrying", "err", err)
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("check the job is still ours before publishing: %w", err)
		}
	}
}

// progress receives the runner's reports; it must not block.
func (a *attempt) progress(p kalla.Progress) {
	if a.lost.Load() {
		return
	}
	p.RunID = a.runID
	a.mu.Lock()
	changed := p.Stage != a.stage
	a.latest = &p
	a.mu.Unlock()
	if changed {
		a.observeStage(p.Stage)
		select {
		case a.nudge <- struct{}{}:
		default:
		}
	}
	if a.url != "" {
		a.w.cfg.Notifier.Progress(a.url, p)
	}
}

// lastStage is the stage of the latest progress report.
func (a *attempt) lastStage() kalla.Stage {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.latest != nil && a.latest.Stage != "" {
		return a.latest.Stage
	}
	return kalla.StageValidating
}

// observeStage records the end of the current stage and starts next.
func (a *attempt) observeStage(next kalla.Stage) {
	a.mu.Lock()
	prev, start := a.stage, a.stageStart
	a.stage, a.stageStart = next, time.Now()
	a.mu.Unlock()
	if prev != "" && a.w.cfg.Metrics != nil {
		a.w.cfg.Metrics.StageDuration.WithLabelValues(string(prev)).Observe(time.Since(start).Seconds())
	}
}

func (a *attempt) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := a.task.Heartbeat(); err != nil {
				a.log.Warn("heartbeat failed", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// tick re-sends the latest progress every ProgressInterval, so a receiver
// hears from a long stage, and saves it in the record (at once on a stage
// change) for GET /api/jobs/{run_id}.
func (a *attempt) tick(ctx context.Context) {
	t := time.NewTicker(a.w.cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Saved first: a save that finds the job lost stops the
			// re-send too.
			a.save(ctx)
			a.mu.Lock()
			p := a.latest
			a.mu.Unlock()
			if p != nil && a.url != "" && !a.lost.Load() {
				a.w.cfg.Notifier.Progress(a.url, *p)
			}
		case <-a.nudge:
			a.save(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (a *attempt) save(ctx context.Context) {
	a.mu.Lock()
	p := a.latest
	if p == nil || p == a.saved {
		a.mu.Unlock()
		return
	}
	a.saved = p
	a.mu.Unlock()
	_, err := a.update(ctx, func(r *kalla.JobRecord) error {
		r.Progress = p
		return nil
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("save progress failed", "err", err)
	}
}

// owns reports whether r is still this attempt's: another runner takes a
// job over when this one's heartbeats stop reaching the queue.
func (a *attempt) owns(r *kalla.JobRecord) bool {
	return r.HeldBy(a.task.Seq, a.number)
}

// finish records the move m that ends the job (completed, failed or
// cancelled) while this attempt holds it, then acks the task, counts the
// job and has its final callback sent.
func (a *attempt) finish(m kalla.Move) {
	ctx, cancel := opCtx()
	defer cancel()
	state, res, report := m.To, m.Result, m.Report
	lost, err := a.update(ctx, func(r *kalla.JobRecord) error {
		a.mu.Lock()
		if a.latest != nil {
			r.Progress = a.latest
		}
		a.mu.Unlock()
		if err := r.Move(m); err != nil {
			return err
		}
		report = r.Error
		return nil
	})
	switch {
	case err != nil:
		// Not acked: the task is redelivered and the next runner decides.
		a.log.Error("record job outcome failed", "state", state, "err", err)
		return
	case lost:
		a.log.Warn("lost the job: another runner took it over; this attempt's outcome is discarded", "state", state)
		return
	}
	a.w.ack(a.task, a.log)
	a.w.cfg.Metrics.finished(state, res)
	a.w.cfg.Notifier.Finished(a.runID)
	if report != nil {
		a.log.Info("job ended", "state", state, "stage", report.Stage, "err", report.Error)
	} else {
		a.log.Info("job completed", "matched", res.MatchedCount, "elapsed_ms", res.ElapsedMS)
	}
}

// requeue puts a job stopped by shutdown back in the queue for any runner.
func (a *attempt) requeue(now time.Time) {
	ctx, cancel := opCtx()
	defer cancel()
	lost, err := a.update(ctx, func(r *kalla.JobRecord) error {
		r.Progress = nil
		return r.Move(kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeRequeued, At: now, Reason: errShutdown.Error()})
	})
	switch {
	case err != nil:
		a.log.Error("requeue job failed; it will be redelivered after the ack wait", "err", err)
		return
	case lost:
		// The task is another runner's now: leave it alone.
		a.log.Warn("lost the job: another runner took it over; not requeueing it")
		return
	}
	if err := a.w.cfg.Queue.Requeue(ctx, a.task); err != nil {
		a.log.Warn("requeue task failed; it will be redelivered after the ack wait", "err", err)
	}
	a.log.Info("job requeued at shutdown")
}
