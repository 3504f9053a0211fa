package kallahttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kalla-dev/kalla"
)

// Accepted is the answer to a newly accepted job (202).
type Accepted struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	// ChecksDeferred, when set, says why the job's rules were not bound
	// against its sources' columns before it was accepted (a source
	// unreachable, or slower than the check's time; see SubmitBind): its
	// run checks them and reports a fault through the error callback.
	ChecksDeferred string `json:"checks_deferred,omitempty"`
}

// JobView is a run as the API shows it: GET /api/jobs/{run_id}, the items of
// GET /api/jobs, and the answer to a resubmission or a cancel request.
type JobView struct {
	RunID string         `json:"run_id"`
	State kalla.JobState `json:"state"`
	// Job is the job as submitted, its URIs masked (kalla.RedactURI).
	Job *kalla.Job `json:"job,omitempty"`
	// Status repeats State, so a resubmission's answer reads like the 202
	// of the first submission ({"run_id", "status"}).
	Status kalla.JobState `json:"status"`
	// Stage is the stage the job is in (running) or ended in.
	Stage    kalla.Stage `json:"stage,omitempty"`
	Progress float64     `json:"progress"`
	Source   string      `json:"source,omitempty"`
	RowsRead int64       `json:"rows_read,omitempty"`
	// MatchedSoFar is known once the match query has run.
	MatchedSoFar *int64 `json:"matched_so_far,omitempty"`
	// Rule is the rule being run, for a job with rules run in one process
	// (a partitioned job runs every rule in each match task).
	Rule string `json:"rule,omitempty"`
	// Result carries the counts and output paths of a completed job: the
	// body of its complete callback.
	Result *kalla.Result `json:"result,omitempty"`
	// Error is the body of a failed or cancelled job's error callback.
	Error           *kalla.ErrorReport      `json:"error,omitempty"`
	CancelRequested bool                    `json:"cancel_requested,omitempty"`
	Attempts        []kalla.Attempt         `json:"attempts"`
	Callback        *kalla.CallbackDelivery `json:"callback,omitempty"`
	CreatedAt       time.Time               `json:"created_at"`
	UpdatedAt       time.Time               `json:"updated_at"`
	StartedAt       *time.Time              `json:"started_at,omitempty"`
	FinishedAt      *time.Time              `json:"finished_at,omitempty"`
}

// ViewOf builds the API view of rec.
func ViewOf(rec *kalla.JobRecord) JobView {
	job := rec.Job.Redacted()
	v := JobView{
		RunID: rec.RunID, State: rec.State, Status: rec.State, Job: &job,
		Result: rec.Result, Error: rec.Error, CancelRequested: rec.CancelRequested,
		Attempts:  rec.Attempts,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt,
	}
	if v.Attempts == nil {
		v.Attempts = []kalla.Attempt{}
	}
	if p := rec.Progress; p != nil {
		v.Stage, v.Progress, v.Source, v.RowsRead, v.MatchedSoFar = p.Stage, p.Progress, p.Source, p.RowsRead, p.MatchedSoFar
		if rec.State == kalla.JobRunning {
			v.Rule = p.Rule
		}
	}
	switch rec.State {
	case kalla.JobRunning:
		if v.Stage == "" {
			v.Stage = kalla.StageValidating
		}
	case kalla.JobCompleted:
		v.Progress = 1
		if rec.Result != nil {
			v.MatchedSoFar = &rec.Result.MatchedCount
		}
	case kalla.JobFailed, kalla.JobCancelled:
		if rec.Error != nil {
			v.Stage = rec.Error.Stage
		}
	}
	if rec.Job.CallbackURL != "" {
		cb := rec.Callback
		v.Callback = &cb
	}
	return v
}

func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	dry, ok := dryRunParam(w, r.URL.Query())
	if !ok {
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, codeUnsupportedMedia, "", "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, codeBodyTooLarge, "", "job is larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes")
			return
		}
		writeError(w, codeInvalidJob, "", "read body: "+err.Error())
		return
	}
	job, err := kalla.DecodeJob(bytes.NewReader(body))
	if err != nil {
		s.invalid(w, err)
		return
	}
	// A dry run needs no run_id: nothing is kept under it.
	srcs, _, err := s.cfg.Validator.Prepare(r.Context(), job, !dry)
	defer kalla.CloseSources(srcs[:])
	if err != nil {
		s.invalid(w, err)
		return
	}
	normalize(job)
	if dry {
		kalla.CloseSources(srcs[:])
		s.dryRun(w, r, job)
		return
	}
	outcome, deferred := s.checkBind(w, r, job, srcs)
	kalla.CloseSources(srcs[:])
	if outcome == bindAnswered {
		return
	}

	if s.refuseQueueFull(w, r.Context(), job) {
		return
	}

	existing, err := s.cfg.Store.Create(r.Context(), kalla.NewJobRecord(job, time.Now().UTC()))
	switch {
	case errors.Is(err, kalla.ErrJobExists):
		s.resubmitted(w, r.Context(), job, existing)
		return
	case errors.Is(err, kalla.ErrStoreFull):
		s.log.Warn("job refused: job store full", "run_id", job.RunID, "err", err)
		w.Header().Set("Retry-After", "60")
		writeError(w, codeStoreFull, "", "the job store is full of jobs still queued, running or awaiting their callback; retry later")
		return
	case err != nil:
		s.log.Error("store job", "run_id", job.RunID, "err", err)
		writeError(w, codeUnavailable, "", "the job store is unavailable; submit the job again")
		return
	}
	if err := s.cfg.Queue.Enqueue(r.Context(), job.RunID); err != nil {
		// The job is stored as queued: a resubmission (or the next
		// scheduler start) queues it again.
		s.log.Error("enqueue job", "run_id", job.RunID, "err", err)
		writeError(w, codeUnavailable, "", "the job is stored but could not be queued; submit it again")
		return
	}
	if deferred != "" {
		s.log.Info("job accepted unchecked", "run_id", job.RunID, "checks_deferred", deferred)
	} else {
		s.log.Info("job accepted", "run_id", job.RunID)
	}
	writeJSON(w, http.StatusAccepted, Accepted{RunID: job.RunID, Status: "accepted", ChecksDeferred: deferred})
}

// refuseQueueFull answers 429 when MaxQueued jobs already wait, unless job
// is a resubmission of a known run, which gets its usual answer. It reports
// whether it answered.
func (s *Server) refuseQueueFull(w http.ResponseWriter, ctx context.Context, job *kalla.Job) bool {
	if s.cfg.MaxQueued <= 0 || s.cfg.QueueDepth == nil {
		return false
	}
	depth, err := s.cfg.QueueDepth(ctx)
	if err != nil {
		// Enqueue will most likely fail too and say so.
		s.log.Warn("read queue depth", "err", err)
		return false
	}
	if depth < s.cfg.MaxQueued {
		return false
	}
	if existing, err := s.cfg.Store.Get(ctx, job.RunID); err == nil {
		s.resubmitted(w, ctx, job, existing)
		return true
	}
	s.log.Warn("job refused: queue full", "run_id", job.RunID, "queued", depth, "max_queued", s.cfg.MaxQueued)
	w.Header().Set("Retry-After", strconv.Itoa(queueFullRetry))
	writeError(w, codeQueueFull, "", fmt.Sprintf("%d jobs are already queued, the most this scheduler accepts (--max-queued %d); retry later", depth, s.cfg.MaxQueued))
	return true
}

// queueFullRetry is the Retry-After, in seconds, of a 429 for a full queue.
const queueFullRetry = 30

// resubmitted answers a submission of a known run id with the run's current
// state (200), unless the job differs from the one first submitted (409).
func (s *Server) resubmitted(w http.ResponseWriter, ctx context.Context, job *kalla.Job, existing *kalla.JobRecord) {
	if !sameJob(job, &existing.Job) {
		writeError(w, codeRunIDConflict, "run_id", "run "+job.RunID+" was submitted before with a different job; use a new run_id")
		return
	}
	if existing.State == kalla.JobQueued && len(existing.Attempts) == 0 {
		// Its first submission may have failed to queue it; a duplicate
		// task is harmless.
		if err := s.cfg.Queue.Enqueue(ctx, job.RunID); err != nil {
			s.log.Error("enqueue job", "run_id", job.RunID, "err", err)
			writeError(w, codeUnavailable, "", "the job is stored but could not be queued; submit it again")
			return
		}
	}
	writeJSON(w, http.StatusOK, ViewOf(existing))
}

func (s *Server) invalid(w http.ResponseWriter, err error) {
	var v *kalla.ValidationError
	if errors.As(err, &v) {
		writeError(w, codeInvalidJob, v.Field, v.Error())
		return
	}
	internalError(w, s.log, "validate job", err)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// normalize compacts filter values, so that a resubmission that differs only
// in whitespace is the same job.
func normalize(job *kalla.Job) {
	for i := range job.Sources {
		for k, f := range job.Sources[i].Filters {
			var buf bytes.Buffer
			if json.Compact(&buf, f.Value) == nil {
				job.Sources[i].Filters[k].Value = buf.Bytes()
			}
		}
	}
}

func sameJob(a, b *kalla.Job) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookup(w, r)
	if ok {
		writeJSON(w, http.StatusOK, ViewOf(rec))
	}
}

// lookup reads the record named by the {run_id} path segment, answering the
// error itself when there is none.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*kalla.JobRecord, bool) {
	runID, ok := pathRunID(w, r)
	if !ok {
		return nil, false
	}
	rec, err := s.cfg.Store.Get(r.Context(), runID)
	switch {
	case errors.Is(err, kalla.ErrJobNotFound):
		writeError(w, codeNotFound, "run_id", "no job with run_id "+runID)
		return nil, false
	case err != nil:
		internalError(w, s.log, "read job", err)
		return nil, false
	}
	return rec, true
}

func pathRunID(w http.ResponseWriter, r *http.Request) (string, bool) {
	runID := r.PathValue("run_id")
	if _, err := uuid.Parse(runID); err != nil {
		writeError(w, codeInvalidRunID, "run_id", strconv.Quote(runID)+" is not a UUID")
		return "", false
	}
	return runID, true
}

// Paging of GET /api/jobs: limit defaults to defaultList and may not exceed
// maxList, so that one request reads a bounded number of records.
const (
	defaultList = 100
	maxList     = 1000
)

// JobList is the answer to GET /api/jobs: a page of runs, newest first.
type JobList struct {
	Jobs []JobView `json:"jobs"`
	// Next is the cursor to pass as ?after= for the next (older) page;
	// null on the last page.
	Next *string `json:"next"`
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultList
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxList {
			writeError(w, codeInvalidQuery, "limit", "limit must be an integer from 1 to "+strconv.Itoa(maxList)+", got "+strconv.Quote(v))
			return
		}
		limit = n
	}
	after := q.Get("after")
	if q.Has("after") && after == "" {
		writeError(w, codeInvalidQuery, "after", "after must be the next cursor of a previous page, got an empty value")
		return
	}
	recs, next, err := s.cfg.Store.List(r.Context(), limit, after)
	switch {
	case errors.Is(err, kalla.ErrBadCursor):
		writeError(w, codeInvalidQuery, "after", "after "+strconv.Quote(after)+" is not a cursor this API returned as next")
		return
	case err != nil:
		internalError(w, s.log, "list jobs", err)
		return
	}
	list := JobList{Jobs: make([]JobView, len(recs))}
	for i, rec := range recs {
		list.Jobs[i] = ViewOf(rec)
	}
	if next != "" {
		list.Next = &next
	}
	writeJSON(w, http.StatusOK, list)
}

// cancelJob cancels a queued job at once (it will never run) or asks the
// runner of a running job to stop; that runner records the cancellation and
// sends the error callback with stage "cancelled" (kalla.JobRecord.RequestCancel).
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	runID, ok := pathRunID(w, r)
	if !ok {
		return
	}
	cancelledNow := false
	rec, err := kalla.UpdateJob(r.Context(), s.cfg.Store, runID, func(rec *kalla.JobRecord) error {
		var err error
		cancelledNow, err = rec.RequestCancel(time.Now().UTC())
		return err
	})
	switch {
	case errors.Is(err, kalla.ErrJobNotFound):
		writeError(w, codeNotFound, "run_id", "no job with run_id "+runID)
		return
	case errors.Is(err, kalla.ErrIllegalMove):
		writeError(w, codeAlreadyFinished, "run_id", "job "+runID+" already "+string(rec.State))
		return
	case err != nil:
		internalError(w, s.log, "cancel job", err)
		return
	}
	if cancelledNow {
		s.cfg.Notifier.Finished(runID)
	}
	status := http.StatusOK
	if rec.State == kalla.JobRunning {
		status = http.StatusAccepted // the runner stops it shortly
	}
	s.log.Info("job cancel requested", "run_id", runID, "state", rec.State)
	writeJSON(w, status, ViewOf(rec))
}
