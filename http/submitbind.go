package kallahttp

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/kalla-dev/kalla"
)

// Binder binds a job's rules against its sources' columns without reading
// rows; *kalla.Runner is one (CheckBind). A *kalla.ValidationError is a
// fault of the job; any other error says only that the check could not be
// made.
type Binder interface {
	CheckBind(ctx context.Context, job *kalla.Job, srcs [2]kalla.Source) error
}

var _ Binder = (*kalla.Runner)(nil)

// SubmitBind configures the binding of a submitted job against its
// sources' columns, so that a job a run could not even start is refused
// with 400 naming the field instead of failing later in stage validating.
//
// It runs in the request and needs no job slot: it reads columns only
// (Parquet footers, a Postgres catalog query, a sample of a CSV file), in
// an engine session of its own that holds no rows. A job whose sources
// cannot be reached, or read within Timeout, is accepted all the same,
// unchecked (Accepted.ChecksDeferred says why): its run binds it again
// and reports what is wrong through the error callback, as it did before
// the check existed. Refusing it with 503 would turn a database that is
// down for maintenance, or a CSV object on S3 too large to fetch in
// Timeout, into jobs that cannot be submitted at all.
type SubmitBind struct {
	// Binder binds; nil accepts jobs unbound.
	Binder Binder
	// Timeout bounds the check, the wait for a free check included;
	// default 5s. The request's own context bounds it too.
	Timeout time.Duration
	// MaxConcurrent bounds the checks that run at once (each opens an
	// engine session and connections to the sources); a submission that
	// cannot start one within Timeout is accepted unchecked. Default:
	// GOMAXPROCS.
	MaxConcurrent int
}

// defaultBindTimeout is SubmitBind.Timeout unless configured: binding reads
// catalogs and footers, a few milliseconds each (docs/benchmarks.md);
// 5s is a connection attempt to a slow host, and a client's patience.
const defaultBindTimeout = 5 * time.Second

// binding limits the checks in flight; nil when none is made.
type binding struct {
	cfg   SubmitBind
	slots chan struct{}
}

func newBinding(cfg SubmitBind) *binding {
	if cfg.Binder == nil {
		return nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultBindTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	return &binding{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent)}
}

// bindOutcome is what checkBind found.
type bindOutcome int

const (
	bindChecked  bindOutcome = iota // the job binds
	bindDeferred                    // could not tell: accept, unchecked
	bindAnswered                    // it answered (400, or the client left)
)

// checkBind binds job (validated, its sources srcs open) within the
// configured time. On a fault of the job it answers 400 naming the field,
// unless the run id is already stored, whose submission gets the usual
// resubmission answer: the check may fail now for a job accepted unchecked
// before. deferred says why the job could not be checked.
func (s *Server) checkBind(w http.ResponseWriter, r *http.Request, job *kalla.Job, srcs [2]kalla.Source) (outcome bindOutcome, deferred string) {
	b := s.bind
	if b == nil {
		return bindChecked, ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		if r.Context().Err() != nil {
			return bindAnswered, ""
		}
		return bindDeferred, strconv.Itoa(cap(b.slots)) + " other submissions were being checked for " + b.cfg.Timeout.String()
	}
	err := b.cfg.Binder.CheckBind(ctx, job, srcs)
	<-b.slots
	log := s.log.With("run_id", job.RunID)
	switch {
	case err == nil:
		log.Debug("job bound", "elapsed", time.Since(start).Round(time.Microsecond))
		return bindChecked, ""
	case r.Context().Err() != nil:
		return bindAnswered, ""
	case ctx.Err() != nil:
		return bindDeferred, "its sources' columns could not be read within " + b.cfg.Timeout.String()
	case kalla.IsValidation(err):
		if existing, gerr := s.cfg.Store.Get(r.Context(), job.RunID); gerr == nil {
			s.resubmitted(w, r.Context(), job, existing)
			return bindAnswered, ""
		} else if !errors.Is(gerr, kalla.ErrJobNotFound) {
			log.Warn("read job", "err", gerr)
		}
		log.Info("job refused", "err", err)
		s.invalid(w, err)
		return bindAnswered, ""
	default:
		return bindDeferred, kalla.RedactText(err.Error(), job.Secrets()...)
	}
}
