package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/kalla-dev/kalla/cluster"
)

// limitOptions are the scheduler's resource limits: how long a job may run,
// how many may wait, how long and how many records are kept, how long the
// HTTP server waits for a client, and how many callbacks may wait for one
// receiver. docs/security.md ("Resource limits") describes them for operators.
type limitOptions struct {
	jobTimeout          time.Duration
	maxQueued           int
	jobRetention        time.Duration
	maxStoredJobs       int
	maxPendingCallbacks int
	httpHeaderTimeout   time.Duration
}

// defaultJobTimeout bounds a scheduler's job unless configured: generous
// enough for the largest reconciliations we have seen (minutes), short
// enough that a runaway match query does not hold a slot for days.
const defaultJobTimeout = 6 * time.Hour

// register adds the limit flags to fs, with their env fallbacks.
func (o *limitOptions) register(fs *flag.FlagSet) error {
	var errs []error
	errs = append(errs, durationFlag(fs, &o.jobTimeout, "job-timeout", defaultJobTimeout, "KALLA_JOB_TIMEOUT",
		"a job running longer is stopped and fails, not retried; 0 for no limit (env KALLA_JOB_TIMEOUT)"))
	errs = append(errs, durationFlag(fs, &o.jobRetention, "job-retention", 7*24*time.Hour, "KALLA_JOB_RETENTION",
		"how long a finished job's record is kept; queued and running jobs are always kept (env KALLA_JOB_RETENTION)"))
	errs = append(errs, durationFlag(fs, &o.httpHeaderTimeout, "http-header-timeout", 10*time.Second, "KALLA_HTTP_HEADER_TIMEOUT",
		"a client must send its request headers within this; slower clients are disconnected (env KALLA_HTTP_HEADER_TIMEOUT)"))
	ints := []struct {
		p    *int
		name string
		def  int
		env  string
		help string
	}{
		{&o.maxQueued, "max-queued", 1000, "KALLA_MAX_QUEUED", "jobs that may wait in the queue; a new job beyond it gets 429; 0 for no limit (env KALLA_MAX_QUEUED)"},
		{&o.maxStoredJobs, "max-stored-jobs", 100_000, "KALLA_MAX_STORED_JOBS", "job records kept; beyond it the oldest finished ones are removed, or new jobs get 503 when none may be (env KALLA_MAX_STORED_JOBS)"},
		{&o.maxPendingCallbacks, "max-pending-callbacks", 256, "KALLA_MAX_PENDING_CALLBACKS", "runs whose callbacks may wait for one callback host; beyond it their progress reports are dropped (env KALLA_MAX_PENDING_CALLBACKS)"},
	}
	for _, f := range ints {
		v, err := envInt(f.def, f.env)
		errs = append(errs, err)
		fs.IntVar(f.p, f.name, v, f.help)
	}
	return errors.Join(errs...)
}

func (o *limitOptions) validate() error {
	switch {
	case o.jobTimeout < 0:
		return fmt.Errorf("--job-timeout %s: must not be negative (0 for no limit)", o.jobTimeout)
	case o.jobRetention < time.Minute:
		return fmt.Errorf("--job-retention %s: must be at least 1m", o.jobRetention)
	case o.httpHeaderTimeout < 100*time.Millisecond:
		return fmt.Errorf("--http-header-timeout %s: must be at least 100ms", o.httpHeaderTimeout)
	case o.maxQueued < 0:
		return fmt.Errorf("--max-queued %d: must not be negative (0 for no limit)", o.maxQueued)
	case o.maxStoredJobs < 1:
		return fmt.Errorf("--max-stored-jobs %d: must be at least 1", o.maxStoredJobs)
	case o.maxPendingCallbacks < 1:
		return fmt.Errorf("--max-pending-callbacks %d: must be at least 1", o.maxPendingCallbacks)
	}
	return nil
}

// durationFlag registers a duration flag whose default comes from the
// environment variable envName when it is set; a malformed value is
// reported, not ignored.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, envName, help string) error {
	v := def
	var err error
	if s := env("", envName); s != "" {
		d, perr := time.ParseDuration(s)
		if perr != nil {
			err = fmt.Errorf("environment variable %s=%q is not a duration such as 30s", envName, s)
		} else {
			v = d
		}
	}
	fs.DurationVar(p, name, v, help)
	return err
}

// queueDepth counts the jobs waiting in q, for --max-queued.
func queueDepth(q *cluster.Queue) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		st, err := q.Stats(ctx)
		return st.Depth, err
	}
}
