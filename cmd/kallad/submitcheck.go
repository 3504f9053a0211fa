package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
)

// submitCheckOptions configure the scheduler's binding of a submitted job
// against its sources' columns (kallahttp.SubmitBind).
type submitCheckOptions struct {
	timeout time.Duration
}

// defaultSubmitCheckTimeout bounds the check: binding reads catalogs and
// footers in milliseconds; longer is a source slow to answer, whose job is
// then accepted unchecked rather than held (docs/benchmarks.md).
const defaultSubmitCheckTimeout = 5 * time.Second

func (o *submitCheckOptions) register(fs *flag.FlagSet) error {
	return durationFlag(fs, &o.timeout, "submit-check-timeout", defaultSubmitCheckTimeout, "KALLA_SUBMIT_CHECK_TIMEOUT",
		"how long a submission may spend binding the job's rules against its sources' columns (400 on a fault); a job not checked in time, or whose sources cannot be reached, is accepted and checked when it runs; 0 turns the check off (env KALLA_SUBMIT_CHECK_TIMEOUT)")
}

func (o *submitCheckOptions) validate() error {
	if o.timeout < 0 {
		return fmt.Errorf("--submit-check-timeout %s: must not be negative (0 turns the check off)", o.timeout)
	}
	return nil
}

// config is the API's SubmitBind for runner.
func (o *submitCheckOptions) config(runner *kalla.Runner) kallahttp.SubmitBind {
	if o.timeout == 0 {
		return kallahttp.SubmitBind{}
	}
	return kallahttp.SubmitBind{Binder: runner, Timeout: o.timeout}
}
