package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// Local runs jobs when no executor is alive.
	Local kalla.JobRunner
	// LocalJobs, if positive, is how many jobs Local may run at once while
	// no executor is alive; a job beyond them is distributed anyway and
	// waits for an executor (up to OrphanTimeout), so that its tasks show
	// as demand to an autoscaler. 0: no limit; negative: no job runs here.
	LocalJobs int
	Tasks     *TaskQueue
	Members   *Members
	// Splitter, if set, splits a staged source that can be read in parts
	// (Postgres) into up to Partitions stage tasks, and no more than the
	// live executors run at once; otherwise, and for other sources, one
	// stage task reads the whole source.
	Splitter *distributed.Runner
	// Partitions is the number of match tasks per split job.
	Partitions int
	// Staging is where executors exchange files, the same as theirs; each
	// attempt of a job stages under the key cluster/<run id>/<attempt>. The
	// coordinator only creates, lists and removes keys there.
	Staging distributed.Staging
	// OrphanTimeout fails an attempt whose tasks wait this long with no
	// executor alive. Default 1m.
	OrphanTimeout time.Duration
	Metrics       *TaskMetrics
	Logger        *slog.Logger
}

// Coordinator is the scheduler's kalla.JobRunner: with no executor alive it
// runs a job locally at once; otherwise it coordinates the job's tasks on
// the executors, and the job's rows never pass through this process.
type Coordinator struct {
	cfg CoordinatorConfig
	log *slog.Logger
	// local counts the jobs Local runs now.
	local atomic.Int64
}

var _ kalla.JobRunner = (*Coordinator)(nil)

// NewCoordinator validates cfg.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	switch {
	case cfg.Local == nil, cfg.Tasks == nil, cfg.Members == nil:
		return nil, errors.New("coordinator config: Local, Tasks and Members are required")
	case cfg.Staging == nil:
		return nil, errors.New("coordinator config: Staging is required")
	}
	if cfg.Partitions < 1 {
		cfg.Partitions = 1
	}
	if cfg.OrphanTimeout == 0 {
		cfg.OrphanTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Coordinator{cfg: cfg, log: cfg.Logger.With("component", "coordinator")}, nil
}

// Run implements kalla.JobRunner.
func (co *Coordinator) Run(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
	execs, err := co.cfg.Members.Executors(ctx)
	if err != nil {
		co.log.Warn("list executors failed; running the job here", "err", err)
	}
	if len(execs) == 0 {
		if co.takeLocal() {
			defer co.local.Add(-1)
			return co.cfg.Local.Run(ctx, job, progress)
		}
		co.log.Info("no executor alive and no local job slot free; the job waits for an executor",
			"run_id", job.RunID, "local_jobs", co.cfg.LocalJobs, "wait", co.cfg.OrphanTimeout)
	}
	if job.RunID == "" {
		job.RunID = kalla.NewRunID()
	}
	c := &coordinatorAttempt{co: co, job: job, gen: nuid.Next(), start: time.Now(), progress: progress}
	c.log = co.log.With("run_id", job.RunID, "gen", c.gen)
	st := co.cfg.Staging
	runDir := distributed.RunDir(job.RunID)
	// A previous attempt of this run (its scheduler died) left its files.
	if err := st.RemoveAll(ctx, runDir); err != nil {
		c.log.Warn("remove the staging files of a previous attempt failed", "staging", st.String(), "key", runDir, "err", err)
	}
	c.root = distributed.AttemptDir(job.RunID, c.gen)
	if err := st.Create(ctx, distributed.AttemptFolders(c.root)...); err != nil {
		return nil, &kalla.StageError{Stage: kalla.StageValidating, Err: fmt.Errorf("prepare the job's staging: %w", err)}
	}
	defer func() {
		// Removing the folder also stops this attempt's tasks still running.
		// The job's context may be done: removing must not depend on it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := st.RemoveAll(rctx, runDir); err != nil {
			c.log.Warn("remove staging folder failed", "staging", st.String(), "key", runDir, "err", err)
		}
		cctx, cancel := opCtx()
		defer cancel()
		if err := co.cfg.Tasks.Purge(cctx, c.gen); err != nil {
			c.log.Warn("purge tasks failed", "err", err)
		}
		co.cfg.Tasks.Forget(cctx, c.gen, c.ids)
	}()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if c.results, err = co.cfg.Tasks.Watch(wctx, c.gen); err != nil {
		return nil, &kalla.StageError{Stage: kalla.StageValidating, Err: err}
	}
	c.log.Info("distributing job", "executors", len(execs), "partitions", co.cfg.Partitions)
	res, err := c.run(ctx)
	if te := kalla.JobTimeout(ctx); err != nil && te != nil {
		// The executors' tasks stop when the deferred removal of the
		// staging folder reaches them.
		return nil, &kalla.StageError{Stage: kalla.ErrorStage(err), Err: te}
	}
	if err != nil && ctx.Err() != nil {
		err = &kalla.StageError{Stage: kalla.StageCancelled, Err: fmt.Errorf("%w during %s", kalla.ErrCancelled, kalla.ErrorStage(err))}
	}
	return res, err
}

// takeLocal takes a local job slot if one is free.
func (co *Coordinator) takeLocal() bool {
	for {
		n := co.local.Load()
		if co.cfg.LocalJobs < 0 || (co.cfg.LocalJobs > 0 && n >= int64(co.cfg.LocalJobs)) {
			return false
		}
		if co.local.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// LocalRunning is how many jobs run in this process because no executor was
// alive when they started: work executors would have taken.
func (co *Coordinator) LocalRunning() int { return int(co.local.Load()) }

// coordinatorAttempt is one attempt of a distributed job.
type coordinatorAttempt struct {
	co       *Coordinator
	job      *kalla.Job
	gen      string
	root     string
	start    time.Time
	progress func(kalla.Progress)
	results  <-chan *TaskResult
	ids      []string
	log      *slog.Logger
}

func (c *coordinatorAttempt) report(p kalla.Progress) {
	p.RunID = c.job.RunID
	if c.progress != nil {
		c.progress(p)
	}
}

func (c *coordinatorAttempt) run(ctx context.Context) (*kalla.Result, error) {
	m := c.co.cfg.Metrics
	c.report(kalla.Progress{Stage: kalla.StageStaging, Progress: 0})
	pt := c.task("plan", TaskPlan)
	pt.Plan = &distributed.PlanSpec{Splits: c.co.cfg.Partitions} // the most parts a source of files is cut into
	planned, err := c.phase(ctx, []*ExecTask{pt}, nil)
	if err != nil {
		return nil, err
	}
	plan := planned[0].Plan
	if plan == nil {
		return nil, &kalla.StageError{Stage: kalla.StageValidating, Err: errors.New("plan task returned no plan")}
	}
	c.log.Info("job planned", "mode", plan.Mode, "reason", plan.Reason)
	if plan.Mode == distributed.SplitSingle {
		t := c.task("job", TaskJob)
		done, err := c.phase(ctx, []*ExecTask{t}, nil)
		if err != nil {
			return nil, err
		}
		return done[0].Result, nil
	}
	if err := c.fixAsOf(plan.AsOf); err != nil {
		return nil, err
	}

	parts := c.co.cfg.Partitions
	var stage []*ExecTask
	var counts [2]int64
	// sides are where match tasks find each source, filled as it is staged.
	var sides [2]distributed.PartitionSide
	var held []*kalla.SourceSplits
	release := func() {
		for _, h := range held {
			if err := h.Release(); err != nil {
				c.log.Warn("release source splits failed", "err", err)
			}
		}
		held = nil
	}
	defer release()
	for side := range 2 {
		if plan.Direct[side] {
			// Parquet files every executor reads: each match task reads
			// its partition in place, nothing is staged.
			counts[side] = plan.Rows[side]
			sides[side] = distributed.PartitionSide{Direct: true, Hash: plan.Hash[side]}
			continue
		}
		splits := plan.Splits[side]
		if len(splits) == 0 && plan.Coordinate[side] {
			ss, err := c.split(ctx, side, min(parts, c.slots(ctx)))
			if err != nil {
				return nil, err
			}
			if ss != nil {
				held = append(held, ss)
				splits = ss.Splits
			}
		} else {
			c.log.Info("source split", "alias", c.job.Sources[side].Alias, "splits", len(splits))
		}
		n := max(len(splits), 1)
		for k := range n {
			t := c.task(fmt.Sprintf("stage-%d-%d", side, k), TaskStage)
			// Each stage task writes into a folder of its own, which a
			// retry of the task replaces: no row is staged twice.
			t.Stage = &distributed.StageSpec{Side: side, Hash: plan.Hash[side], Parts: parts, Dir: distributed.StageDir(c.root, side, k)}
			if len(splits) > 0 {
				t.Stage.Split = &splits[k]
			}
			sides[side].StageDirs = append(sides[side].StageDirs, t.Stage.Dir)
			if c.job.CarryOver != nil {
				// Each match task carries the previous run's rows of
				// its partition, by the same hash.
				sides[side].Hash = plan.Hash[side]
			}
			stage = append(stage, t)
		}
	}
	var staged []*TaskResult
	if len(stage) > 0 {
		var err error
		staged, err = c.phase(ctx, stage, func(done, total int) {
			c.report(kalla.Progress{Stage: kalla.StageStaging, Progress: float64(done) / float64(total)})
		})
		// Every split is read (or the job failed): end the transactions
		// that kept the splits consistent.
		release()
		if err != nil {
			return nil, err
		}
	}
	seen := [2]bool{}
	for i, r := range staged {
		side := stage[i].Stage.Side
		if r.Staged == nil {
			return nil, &kalla.StageError{Stage: kalla.StageStaging, Err: fmt.Errorf("stage task %s returned nothing", stage[i].ID)}
		}
		if seen[side] && !slices.Equal(sides[side].Columns, r.Staged.Columns) {
			return nil, &kalla.StageError{Stage: kalla.StageStaging, Err: fmt.Errorf("stage task %s of source %q staged other column types than the source's other splits",
				stage[i].ID, c.job.Sources[side].Alias)}
		}
		seen[side] = true
		counts[side] += r.Staged.Rows
		sides[side].Columns = r.Staged.Columns
		if m != nil {
			m.RowsShuffled.Add(float64(r.Staged.Rows))
			m.BytesShuffled.Add(float64(r.Staged.Bytes))
		}
	}
	rowsRead := counts[0] + counts[1]
	broadcast := -1
	if plan.Mode == distributed.SplitBroadcast {
		broadcast = 1
		if counts[0] < counts[1] {
			broadcast = 0
		}
	}

	c.report(kalla.Progress{Stage: kalla.StageMatching, Progress: 0, RowsRead: rowsRead})
	var match []*ExecTask
	for p := range parts {
		t := c.task(fmt.Sprintf("match-%d", p), TaskMatch)
		t.Match = &distributed.PartitionSpec{Partition: p, Parts: parts, Dir: distributed.MatchDir(c.root, p),
			Spec: plan.Spec, Broadcast: broadcast, Sides: sides}
		match = append(match, t)
	}
	matched, err := c.phase(ctx, match, func(done, total int) {
		c.report(kalla.Progress{Stage: kalla.StageMatching, Progress: float64(done) / float64(total), RowsRead: rowsRead})
	})
	if err != nil {
		return nil, err
	}
	var sofar int64
	ms := &distributed.MergeSpec{Spec: plan.Spec, Broadcast: broadcast, Counts: counts, Start: c.start}
	for p, r := range matched {
		if r.Counts != nil {
			sofar += r.Counts.Matched
			ms.Rules = kalla.AddRuleCounts(ms.Rules, r.Counts.Rules)
			ms.Reasons = ms.Reasons.Add(r.Counts.Reasons)
		}
		if m != nil {
			m.PartialBytes.Add(float64(r.Bytes))
		}
		ms.AddPartition(match[p].Match.Dir)
		if co := c.job.CarryOver; co != nil {
			if r.Counts == nil {
				return nil, &kalla.StageError{Stage: kalla.StageMatching, Err: fmt.Errorf("match task %s returned no counts", match[p].ID)}
			}
			if err := ms.AddCarried(match[p].Match.Dir, *r.Counts, co.MaxAgeDays != nil); err != nil {
				return nil, &kalla.StageError{Stage: kalla.StageMatching, Err: err}
			}
		}
	}
	if broadcast >= 0 {
		if err := ms.SetBroadcast(ctx, c.co.cfg.Staging, sides[broadcast]); err != nil {
			return nil, &kalla.StageError{Stage: kalla.StageWriting, Err: err}
		}
	}

	c.report(kalla.Progress{Stage: kalla.StageWriting, Progress: 0, RowsRead: rowsRead, MatchedSoFar: &sofar})
	t := c.task("merge", TaskMerge)
	t.Merge = ms
	merged, err := c.phase(ctx, []*ExecTask{t}, nil)
	if err != nil {
		return nil, err
	}
	res := merged[0].Result
	if res == nil {
		return nil, &kalla.StageError{Stage: kalla.StageWriting, Err: errors.New("merge task returned no result")}
	}
	c.report(kalla.Progress{Stage: kalla.StageWriting, Progress: 1, RowsRead: rowsRead, MatchedSoFar: &res.MatchedCount})
	c.log.Info("distributed job done", "matched", res.MatchedCount, "elapsed", time.Since(c.start).Round(time.Millisecond))
	return res, nil
}

// fixAsOf gives the tasks after the plan of a carry-over job the as_of
// the plan fixed, so that every partition ages its rows to the same day
// even when the job runs over midnight. The job the scheduler holds is
// not changed: a resubmission is compared with it as submitted.
func (c *coordinatorAttempt) fixAsOf(asOf string) error {
	co := c.job.CarryOver
	switch {
	case co == nil:
		return nil
	case asOf == "" || (co.AsOf != "" && co.AsOf != asOf):
		return &kalla.StageError{Stage: kalla.StageValidating, Err: fmt.Errorf("the plan fixed carry_over.as_of %q for a job whose as_of is %q", asOf, co.AsOf)}
	}
	job, fixed := *c.job, *co
	fixed.AsOf = asOf
	job.CarryOver = &fixed
	c.job = &job
	return nil
}

// slots is how many tasks the live executors run at once. A database
// source is split into no more ranges than that: each range is read in
// parallel streams inside its task already, so a range more than the
// executors run at once only adds a session, connections and a snapshot
// import (measured: 0.2–0.4 s of a 3 s stage). CSV files are cut into up
// to Partitions splits regardless: a split also spares its task typing
// the columns again.
func (c *coordinatorAttempt) slots(ctx context.Context) int {
	execs, err := c.co.cfg.Members.Executors(ctx)
	if err != nil {
		return 1
	}
	n := 0
	for _, e := range execs {
		n += max(e.MaxTasks, 1)
	}
	return max(n, 1)
}

// split asks the Splitter to split source side into up to n splits; nil
// when it is staged by one task. A source the scheduler cannot split (it
// cannot reach the database, say) is staged whole, with a warning: the
// executors may still reach it.
func (c *coordinatorAttempt) split(ctx context.Context, side, n int) (*kalla.SourceSplits, error) {
	if c.co.cfg.Splitter == nil {
		return nil, nil
	}
	alias := c.job.Sources[side].Alias
	splits, err := c.co.cfg.Splitter.Split(ctx, c.job, side, n)
	switch {
	case err != nil && kalla.IsValidation(err):
		return nil, &kalla.StageError{Stage: kalla.StageValidating, Err: err}
	case err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		c.log.Warn("cannot split source; one task stages it", "alias", alias, "err", err)
		return nil, nil
	case splits != nil:
		c.log.Info("source split", "alias", alias, "splits", len(splits.Splits))
	}
	return splits, nil
}

func (c *coordinatorAttempt) task(id string, kind TaskKind) *ExecTask {
	c.ids = append(c.ids, id)
	return &ExecTask{Gen: c.gen, ID: id, Kind: kind, Job: *c.job, Root: c.root}
}

// phase queues tasks and waits for all their results, in the tasks' order.
// The first failed task fails the phase.
func (c *coordinatorAttempt) phase(ctx context.Context, tasks []*ExecTask, step func(done, total int)) ([]*TaskResult, error) {
	start := time.Now()
	index := map[string]int{}
	for i, t := range tasks {
		index[t.ID] = i
		if err := c.co.cfg.Tasks.Publish(ctx, t); err != nil {
			return nil, &kalla.StageError{Stage: stageOfTask(t.Kind), Err: err}
		}
	}
	out := make([]*TaskResult, len(tasks))
	done := 0
	check := time.NewTicker(2 * time.Second)
	defer check.Stop()
	// A job that waits for a first executor (beyond --local-jobs) waits
	// from now, not from the first check.
	var orphanSince time.Time
	if execs, err := c.co.cfg.Members.Executors(ctx); err == nil && len(execs) == 0 {
		orphanSince = time.Now()
	}
	for done < len(tasks) {
		select {
		case r, ok := <-c.results:
			if !ok {
				return nil, &kalla.StageError{Stage: stageOfTask(tasks[0].Kind), Err: errors.New("task results watch ended")}
			}
			i, mine := index[r.ID]
			if !mine || out[i] != nil {
				continue
			}
			if r.Error != "" {
				err := errors.New(r.Error)
				if r.Validation {
					err = kalla.Invalid("", "%s", r.Error)
				}
				return nil, &kalla.StageError{Stage: r.Stage, Err: err}
			}
			out[i] = r
			done++
			if m := c.co.cfg.Metrics; m != nil {
				m.TaskDuration.WithLabelValues(string(tasks[i].Kind)).Observe(r.Elapsed.Seconds())
				if r.Delivery > 1 {
					m.Redelivered.Add(float64(r.Delivery - 1))
				}
			}
			if step != nil {
				step(done, len(tasks))
			}
		case <-check.C:
			execs, err := c.co.cfg.Members.Executors(ctx)
			switch {
			case err != nil || len(execs) > 0:
				orphanSince = time.Time{}
			case orphanSince.IsZero():
				orphanSince = time.Now()
			case time.Since(orphanSince) > c.co.cfg.OrphanTimeout:
				return nil, &kalla.StageError{Stage: stageOfTask(tasks[0].Kind), Err: fmt.Errorf("no executor alive for %s while %d tasks wait", c.co.cfg.OrphanTimeout, len(tasks)-done)}
			}
		case <-ctx.Done():
			return nil, &kalla.StageError{Stage: stageOfTask(tasks[0].Kind), Err: ctx.Err()}
		}
	}
	if m := c.co.cfg.Metrics; m != nil {
		m.PhaseDuration.WithLabelValues(string(tasks[0].Kind)).Observe(time.Since(start).Seconds())
	}
	return out, nil
}
