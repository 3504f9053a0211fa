package kallahttp

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kalla-dev/kalla"
)

// DryRunner runs a job without writing anything; *kalla.Runner is one.
type DryRunner interface {
	DryRun(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error)
}

var _ DryRunner = (*kalla.Runner)(nil)

// DryRuns configures POST /api/jobs?dry_run=true: the job is validated as a
// submission is, then run at once in this process and answered with its
// counts; nothing is stored, queued, called back or written.
type DryRuns struct {
	// Runner runs them; nil answers 503.
	Runner DryRunner
	// TakeSlot takes one of the process's job slots, which the queued jobs
	// use too (cluster.Worker.TakeSlot), or reports that none is free: a
	// dry run needs the engine's memory as a job does. nil takes none.
	TakeSlot func(context.Context) (release func(), ok bool)
	// JobTimeout bounds a dry run as --job-timeout bounds a job; 0 sets no
	// bound.
	JobTimeout time.Duration
}

// busyRetry is the Retry-After, in seconds, of a 429 for a dry run that
// found every job slot taken.
const busyRetry = 10

// dryRunParam reads the dry_run query parameter: absent, true, false, 1 or
// 0. ok is false when it answered a 400.
func dryRunParam(w http.ResponseWriter, q url.Values) (dry, ok bool) {
	vals, has := q["dry_run"]
	if !has {
		return false, true
	}
	if len(vals) == 1 {
		switch vals[0] {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		}
	}
	got := strconv.Quote(vals[0])
	if len(vals) > 1 {
		got = strconv.Itoa(len(vals)) + " values"
	}
	writeError(w, codeInvalidQuery, "dry_run", "dry_run must be true, false, 1 or 0, got "+got)
	return false, false
}

// dryRun runs job, which has been validated, and answers its result (200),
// or why it failed. The run is cancelled when the client goes away.
func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, job *kalla.Job) {
	d := s.cfg.DryRuns
	if d.Runner == nil {
		writeError(w, codeUnavailable, "dry_run", "this server does not run dry runs")
		return
	}
	if !s.dry.add() {
		writeError(w, codeUnavailable, "", "the scheduler is shutting down")
		return
	}
	defer s.dry.done()
	if d.TakeSlot != nil {
		release, ok := d.TakeSlot(r.Context())
		if !ok {
			if r.Context().Err() != nil {
				return // the client went away while waiting
			}
			w.Header().Set("Retry-After", strconv.Itoa(busyRetry))
			writeError(w, codeBusy, "", "every job slot of this scheduler is taken (--max-jobs); retry the dry run later, or submit the job without dry_run to queue it")
			return
		}
		defer release()
	}
	ctx, cancel := kalla.WithJobTimeout(r.Context(), d.JobTimeout)
	defer cancel()
	log := s.log.With("run_id", job.RunID)
	log.Info("dry run started")
	start := time.Now()
	res, err := d.Runner.DryRun(ctx, job, nil)
	// The answer comes when the run ends, which may be long past the write
	// deadline the server set when the request arrived (WriteTimeout): the
	// answer gets its own. The run is bounded by JobTimeout and by the
	// client, which may leave (net/http watches the connection once the
	// body is read, with no deadline).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	switch {
	case err == nil:
		log.Info("dry run done", "matched", res.MatchedCount, "elapsed", time.Since(start).Round(time.Millisecond))
		writeJSON(w, http.StatusOK, res)
	case kalla.JobTimeout(ctx) != nil:
		stage := kalla.ErrorStage(err)
		log.Warn("dry run stopped: it exceeded the job timeout", "stage", stage, "timeout", d.JobTimeout)
		jobFailed(w, stage, kalla.JobTimeout(ctx).Error())
	case r.Context().Err() != nil:
		log.Info("dry run cancelled: the client went away", "elapsed", time.Since(start).Round(time.Millisecond))
	case kalla.IsValidation(err):
		log.Info("dry run refused", "err", kalla.RedactText(err.Error(), job.Secrets()...))
		s.invalid(w, err)
	default:
		stage := kalla.ErrorStage(err)
		msg := kalla.RedactText(err.Error(), job.Secrets()...)
		log.Info("dry run failed", "stage", stage, "err", msg)
		jobFailed(w, stage, msg)
	}
}

// jobFailed answers a dry run that failed while running, in stage.
func jobFailed(w http.ResponseWriter, stage kalla.Stage, msg string) {
	writeJSON(w, apiStatus[codeJobFailed], ErrorBody{Error: msg, Stage: stage, Code: string(codeJobFailed)})
}

// dryRunning counts the dry runs in flight. Server.Stop waits for them
// after the HTTP server has stopped: net/http does not wait for handlers
// still running when it closes their connections at the end of
// ShutdownTimeout, and the engine a dry run uses is closed right after
// Stop returns.
type dryRunning struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// add counts a dry run in, or reports false once stop has begun.
func (d *dryRunning) add() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return false
	}
	d.wg.Add(1)
	return true
}

func (d *dryRunning) done() { d.wg.Done() }

// stop refuses new dry runs and waits for those in flight; their
// connections are closed by then, which cancels them.
func (d *dryRunning) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.wg.Wait()
}
