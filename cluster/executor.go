package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/internal/startstop"
)

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	Tasks   *TaskQueue
	Members *Members
	// Runner runs the tasks, and checks each task's job first.
	Runner *distributed.Runner
	// Staging is where tasks exchange files, the same as the scheduler's.
	Staging distributed.Staging
	// TempDir holds each task's local copies of staged files (when the
	// staging is not a shared folder); empty means os.TempDir().
	TempDir string
	// Info identifies this executor in the membership bucket.
	Info distributed.ExecutorInfo
	// MaxTasks is how many tasks run at once here. Default 1: DuckDB
	// already uses every core for one task.
	MaxTasks int
	// FetchWait bounds one wait for a task. Default 2s.
	FetchWait time.Duration
	// Registerer, if set, receives the executor's metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Executor takes tasks of distributed jobs from the task queue and runs
// them, heartbeating each so that its loss is noticed within AckWait.
type Executor struct {
	cfg         ExecutorConfig
	log         *slog.Logger
	ackWait     time.Duration
	maxAttempts int
	running     atomic.Int64
	tasksDone   *prometheus.CounterVec

	startstop.Base
	loopDone chan struct{}
	tasks    sync.WaitGroup
}

// NewExecutor validates cfg.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	switch {
	case cfg.Tasks == nil, cfg.Members == nil, cfg.Runner == nil, cfg.Staging == nil:
		return nil, errors.New("executor config: Tasks, Members, Runner and Staging are required")
	case cfg.Info.ID == "":
		return nil, errors.New("executor config: Info.ID is required")
	}
	if cfg.MaxTasks <= 0 {
		cfg.MaxTasks = 1
	}
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Info.MaxTasks = cfg.MaxTasks
	e := &Executor{cfg: cfg, log: cfg.Logger.With("component", "executor", "executor", cfg.Info.ID)}
	e.tasksDone = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kallad_executor_tasks_total", Help: "Tasks this executor ran, by kind and outcome.",
	}, []string{"kind", "outcome"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(e.tasksDone); err != nil {
			return nil, err
		}
		running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kallad_executor_tasks_running", Help: "Tasks running on this executor.",
		}, func() float64 { return float64(e.running.Load()) })
		if err := cfg.Registerer.Register(running); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Start announces the executor and starts taking tasks.
func (e *Executor) Start(ctx context.Context) error {
	return e.StartOnce(ctx, "executor", func(loopCtx context.Context) error {
		var err error
		if e.ackWait, e.maxAttempts, err = e.cfg.Tasks.settings(ctx); err != nil {
			return err
		}
		e.cfg.Info.StartedAt = time.Now().UTC()
		if err := e.announce(ctx); err != nil {
			return err
		}
		e.loopDone = make(chan struct{})
		go e.loop(loopCtx)
		e.log.Info("executor joined", "ack_wait", e.ackWait, "max_attempts", e.maxAttempts, "max_tasks", e.cfg.MaxTasks)
		return nil
	})
}

// Stop stops taking tasks, lets the running ones finish, and leaves.
func (e *Executor) Stop() {
	e.StopOnce(func(stopLoop context.CancelCauseFunc) {
		stopLoop(nil)
		<-e.loopDone
		e.tasks.Wait()
		ctx, cancel := opCtx()
		defer cancel()
		if err := e.cfg.Members.Leave(ctx, e.cfg.Info.ID); err != nil {
			e.log.Warn("leave the cluster failed; the entry expires on its own", "err", err)
		}
		e.log.Info("executor left")
	})
}

func (e *Executor) announce(ctx context.Context) error {
	info := e.cfg.Info
	info.Running = int(e.running.Load())
	return e.cfg.Members.Put(ctx, info)
}

func (e *Executor) loop(ctx context.Context) {
	defer close(e.loopDone)
	beat := time.NewTicker(e.cfg.Members.Interval())
	defer beat.Stop()
	go func() {
		for {
			select {
			case <-beat.C:
				hctx, cancel := context.WithTimeout(ctx, e.cfg.Members.Interval())
				if err := e.announce(hctx); err != nil && ctx.Err() == nil {
					e.log.Warn("membership heartbeat failed", "err", err)
				}
				cancel()
			case <-ctx.Done():
				return
			}
		}
	}()
	consume(ctx, make(chan struct{}, e.cfg.MaxTasks), func(ctx context.Context) (*execDelivery, error) {
		return e.cfg.Tasks.next(ctx, e.cfg.FetchWait)
	}, e.handle, &e.tasks, e.log)
}

// handle runs one delivery: heartbeats keep it ours while it runs and stop
// it if its staging folder disappears (its job ended elsewhere).
func (e *Executor) handle(d *execDelivery) {
	t := &d.task
	log := e.log.With("run_id", t.Job.RunID, "task", t.ID, "gen", t.Gen, "delivery", d.delivery)
	res := &TaskResult{ID: t.ID, Executor: e.cfg.Info.ID, Delivery: d.delivery}
	if err := e.validate(t); err != nil {
		// Refused for good: the same task would be refused again.
		log.Warn("task refused", "kind", t.Kind, "err", err)
		res.Error = fmt.Sprintf("task %s refused: %v", t.ID, err)
		res.Stage, res.Validation = kalla.StageValidating, true
		e.finish(d, res, log)
		return
	}
	if e.attemptOver(t, log) {
		log.Info("task of a finished attempt dropped: its staging folder is gone", "staging", e.cfg.Staging.String(), "key", t.Root)
		_ = d.msg.TermWithReason("attempt over")
		return
	}
	if d.delivery > e.maxAttempts {
		res.Error = fmt.Sprintf("task %s: gave up after %d attempts; the executors running it died or lost their connection", t.ID, e.maxAttempts)
		res.Stage = stageOfTask(t.Kind)
		e.finish(d, res, log)
		return
	}
	e.running.Add(1)
	defer e.running.Add(-1)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(e.ackWait / 4)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if e.attemptOver(t, log) {
					cancel(errAttemptOver)
					return
				}
				if err := d.msg.InProgress(); err != nil {
					log.Warn("task heartbeat failed", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	start := time.Now()
	log.Info("task started", "kind", t.Kind)
	err := e.runStaged(ctx, t, res, log)
	close(done)
	res.Elapsed = time.Since(start)
	// A task whose attempt ended while it ran often fails on its own first
	// (its staged input or output folder is gone) before the heartbeat
	// notices: it is stopped, not retried, either way.
	if errors.Is(err, errAttemptOver) || (context.Cause(ctx) != nil && ctx.Err() != nil) || (err != nil && e.attemptOver(t, log)) {
		log.Info("task stopped: its job attempt ended")
		_ = d.msg.TermWithReason("attempt over")
		e.tasksDone.WithLabelValues(string(t.Kind), "dropped").Inc()
		return
	}
	if err != nil {
		res.Error = kalla.RedactText(fmt.Sprintf("task %s: %v", t.ID, err), t.Job.Secrets()...)
		res.Stage = stageOfTask(t.Kind)
		var se *kalla.StageError
		if errors.As(err, &se) {
			res.Stage = se.Stage
		}
		res.Validation = kalla.IsValidation(err)
		if !res.Validation && d.delivery < e.maxAttempts {
			log.Warn("task failed; it will be retried", "err", err)
			e.tasksDone.WithLabelValues(string(t.Kind), "retried").Inc()
			_ = d.msg.NakWithDelay(time.Second)
			return
		}
		log.Warn("task failed", "err", err)
	} else {
		log.Info("task done", "elapsed", res.Elapsed.Round(time.Millisecond))
	}
	e.finish(d, res, log)
}

// validate checks a task before anything of it runs: its job as the
// scheduler checked it (fields and the SQL sandbox), and the rest of it
// against what a coordinator makes of that job (see ExecTask.check).
func (e *Executor) validate(t *ExecTask) error {
	ctx, cancel := opCtx()
	defer cancel()
	if err := e.cfg.Runner.CheckJob(ctx, &t.Job, true); err != nil {
		return err
	}
	return t.check()
}

// finish reports res and acknowledges the task; if the report fails the
// task is left to be redelivered.
func (e *Executor) finish(d *execDelivery, res *TaskResult, log *slog.Logger) {
	ctx, cancel := opCtx()
	defer cancel()
	if err := e.cfg.Tasks.Report(ctx, d.task.Gen, res); err != nil {
		log.Error("report task result failed; it will be redelivered", "err", err)
		return
	}
	if err := d.msg.DoubleAck(ctx); err != nil {
		log.Warn("ack task failed", "err", err)
	}
	outcome := "ok"
	if res.Error != "" {
		outcome = "failed"
	}
	e.tasksDone.WithLabelValues(string(d.task.Kind), outcome).Inc()
}

// run does the work of t, whose folder is a local path, and fills res.
// Staged input files are fetched below scratch.
func (e *Executor) run(ctx context.Context, t *ExecTask, scratch string, res *TaskResult) error {
	r, job := e.cfg.Runner, t.Job
	// A merge or a whole job publishes the result: not once its attempt is
	// over (another scheduler took the job over and removed its folder).
	ctx = kalla.WithPublishCheck(ctx, func(context.Context) error {
		if e.attemptOver(t, e.log) {
			return errAttemptOver
		}
		return nil
	})
	switch t.Kind {
	case TaskPlan:
		plan, err := r.Plan(ctx, &job, *t.Plan)
		res.Plan = &plan
		return err
	case TaskStage:
		staged, err := r.Stage(ctx, &job, *t.Stage)
		res.Staged = &staged
		return err
	case TaskMatch:
		in, err := t.Match.Inputs(ctx, e.cfg.Staging, scratch)
		if err != nil {
			return &kalla.StageError{Stage: kalla.StageMatching, Err: err}
		}
		c, err := r.Match(ctx, &job, t.Match.Spec, in, t.Match.Dir)
		res.Counts = &c
		if err == nil {
			res.Bytes, err = folderBytes(t.Match.Dir)
		}
		return err
	case TaskMerge:
		m, err := t.Merge.Fetch(ctx, e.cfg.Staging, scratch)
		if err != nil {
			return &kalla.StageError{Stage: kalla.StageWriting, Err: err}
		}
		res.Result, err = r.Merge(ctx, &job, m)
		return err
	case TaskJob:
		var err error
		res.Result, err = r.Run(ctx, &job, nil)
		return err
	}
	return fmt.Errorf("unknown task kind %q", t.Kind)
}

// errAttemptOver stops a task whose job attempt ended: its staging folder
// is gone.
var errAttemptOver = errors.New("the job's attempt ended")

// attemptOver reports whether t's staging folder is gone. A failed check
// is not taken for an answer: the task goes on, and its next heartbeat
// checks again.
func (e *Executor) attemptOver(t *ExecTask, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), max(e.ackWait/4, time.Second))
	defer cancel()
	ok, err := e.cfg.Staging.Exists(ctx, t.Root)
	if err != nil {
		log.Warn("check the task's staging folder failed", "staging", e.cfg.Staging.String(), "key", t.Root, "err", err)
		return false
	}
	return !ok
}

// runStaged runs t on local files: it points the task's folder at a local
// folder of Staging.Output, runs it (fetching its inputs), and publishes
// what it wrote there under its key. Local copies live in a scratch folder
// of this task, removed at the end.
func (e *Executor) runStaged(ctx context.Context, t *ExecTask, res *TaskResult, log *slog.Logger) error {
	st := e.cfg.Staging
	scratch, err := os.MkdirTemp(e.cfg.TempDir, "kalla-task-")
	if err != nil {
		return fmt.Errorf("create the task's local folder: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(scratch); err != nil {
			log.Warn("remove the task's local folder failed", "err", err)
		}
	}()
	key, local := t.dir(), t
	if key != "" {
		dir, err := st.Output(ctx, key, scratch)
		if err != nil {
			return &kalla.StageError{Stage: stageOfTask(t.Kind), Err: err}
		}
		local = t.withDir(dir)
	}
	if err := e.run(ctx, local, scratch, res); err != nil || key == "" {
		return err
	}
	err = st.Publish(ctx, local.dir(), key)
	// The attempt may have ended while the files were published (the
	// heartbeat then cancels ctx): remove what was uploaded after the
	// coordinator removed the attempt's folder, or nothing would.
	if e.attemptOver(t, log) {
		rctx, cancel := opCtx()
		defer cancel()
		if err := st.RemoveAll(rctx, key); err != nil {
			log.Warn("remove the files of an ended attempt failed", "key", key, "err", err)
		}
		return errAttemptOver
	}
	if err != nil {
		return &kalla.StageError{Stage: stageOfTask(t.Kind), Err: fmt.Errorf("publish the task's files to %s: %w", st, err)}
	}
	return nil
}

// folderBytes is the size of the files in dir.
func folderBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		if info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, nil
}
