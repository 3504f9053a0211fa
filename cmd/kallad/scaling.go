package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/kalla-dev/kalla/cluster"
)

// scaleOptions say what the scheduler does with a job while no executor is
// connected: run it itself (today's default: up to --max-jobs of them), or,
// beyond --local-jobs, hand its tasks to executors that an autoscaler is
// expected to start, waiting up to --executor-wait for one.
// docs/operations.md ("Readiness and executor autoscaling") describes them for operators.
type scaleOptions struct {
	localJobs    int
	executorWait time.Duration
}

// allLocal is --local-jobs' default: every job slot may run a job here.
const allLocal = -1

func (o *scaleOptions) register(fs *flag.FlagSet) error {
	v, err := envInt(allLocal, "KALLA_LOCAL_JOBS")
	fs.IntVar(&o.localJobs, "local-jobs", v,
		"jobs run in the scheduler itself while no executor is connected; the others wait for an executor (up to --executor-wait). -1: as many as --max-jobs (env KALLA_LOCAL_JOBS)")
	return errors.Join(err, durationFlag(fs, &o.executorWait, "executor-wait", time.Minute, "KALLA_EXECUTOR_WAIT",
		"how long a distributed job's tasks wait with no executor connected before the job fails (env KALLA_EXECUTOR_WAIT)"))
}

func (o *scaleOptions) validate() error {
	switch {
	case o.localJobs < allLocal:
		return fmt.Errorf("--local-jobs %d: must be 0 or more (-1: as many as --max-jobs)", o.localJobs)
	case o.executorWait < time.Second:
		return fmt.Errorf("--executor-wait %s: must be at least 1s", o.executorWait)
	}
	return nil
}

// apply sets the coordinator's local job limit and executor wait.
func (o *scaleOptions) apply(cfg *cluster.CoordinatorConfig, maxJobs int) {
	switch {
	case o.localJobs == allLocal:
		cfg.LocalJobs = maxJobs
	case o.localJobs == 0:
		cfg.LocalJobs = -1 // none
	default:
		cfg.LocalJobs = o.localJobs
	}
	cfg.OrphanTimeout = o.executorWait
}
