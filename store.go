package kalla

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// JobRecord is the durable state of one run, kept in the JobStore under its
// run id.
type JobRecord struct {
	RunID string   `json:"run_id"`
	Job   Job      `json:"job"`
	State JobState `json:"state"`
	// Progress is the latest progress report of the running attempt.
	Progress *Progress `json:"progress,omitempty"`
	// Attempts are the runs of the job so far, oldest first; each keeps its
	// own error.
	Attempts []Attempt `json:"attempts,omitempty"`
	// TaskSeq identifies the queue task that owns a running job, so that a
	// redelivery of that task (its runner died) is told apart from a
	// duplicate task for the same run.
	TaskSeq uint64 `json:"task_seq,omitempty"`
	// CancelRequested is set by a cancel request for a running job; its
	// runner watches for it and stops.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Result is set when the job completed, Error when it failed or was
	// cancelled.
	Result *Result      `json:"result,omitempty"`
	Error  *ErrorReport `json:"error,omitempty"`
	// Callback records the delivery of the final (complete or error)
	// callback, so that it is sent once even across restarts.
	Callback CallbackDelivery `json:"callback"`

	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`

	// Revision is the store's version of the record, set by the store; an
	// update succeeds only if it is still the latest.
	Revision uint64 `json:"-"`
	// ListSeq is the record's place in the store's creation order, set by
	// the store; List pages through records by it.
	ListSeq uint64 `json:"list_seq,omitempty"`
}

// Attempt is one run of a job by a runner.
type Attempt struct {
	Number    int        `json:"number"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Outcome is how the attempt ended; empty while it runs.
	Outcome AttemptOutcome `json:"outcome,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// CallbackDelivery tracks the final callback of a run.
type CallbackDelivery struct {
	// Delivered is set once the receiver answered the final callback with
	// a 2xx (or rejected it with a 3xx or 4xx, or the callback allow-list
	// refused its address: retrying cannot fix these).
	Delivered   bool       `json:"delivered"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	// Status is the receiver's HTTP status for the delivered callback.
	Status    int    `json:"status,omitempty"`
	Tries     int    `json:"tries,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// NeedsCallback reports whether rec is final and its complete or error
// callback is still to be delivered.
func (rec *JobRecord) NeedsCallback() bool {
	return rec.State.Final() && rec.Job.CallbackURL != "" && !rec.Callback.Delivered
}

// Errors of a JobStore.
var (
	// ErrJobNotFound: no record has the run id.
	ErrJobNotFound = errors.New("job not found")
	// ErrJobExists: Create found a record with the same run id.
	ErrJobExists = errors.New("job already exists")
	// ErrJobConflict: Update lost a race; read the record again and retry.
	ErrJobConflict = errors.New("job record changed concurrently")
	// ErrStoreFull: Create found the store at its size limit with no
	// finished record it may remove to make room.
	ErrStoreFull = errors.New("job store full")
	// ErrBadCursor: List was given a cursor it did not hand out.
	ErrBadCursor = errors.New("malformed page cursor")
)

// JobStore keeps JobRecords durably. Implementations are safe for concurrent
// use by many processes.
type JobStore interface {
	// Create stores rec, which must be new. If a record with the same run
	// id exists, it returns that record and an error wrapping ErrJobExists,
	// so a resubmission sees the run's current state. A store at its size
	// limit returns an error wrapping ErrStoreFull.
	Create(ctx context.Context, rec *JobRecord) (*JobRecord, error)
	// Get returns the record of runID, or an error wrapping ErrJobNotFound.
	Get(ctx context.Context, runID string) (*JobRecord, error)
	// List returns up to limit records (limit >= 1), most recently created
	// first, starting after the record the cursor after points at ("" for
	// the newest), and the cursor of the next page, "" after the last one.
	// It reads the page, not every record. A cursor List did not return is
	// an error wrapping ErrBadCursor.
	List(ctx context.Context, limit int, after string) (recs []*JobRecord, next string, err error)
	// Scan calls fn with every record, in no particular order, one at a
	// time: a scan of a large store holds one record in memory, not all.
	// It stops at the first error fn returns and returns it.
	Scan(ctx context.Context, fn func(*JobRecord) error) error
	// Update replaces the record if rec.Revision is still its latest
	// revision and returns the stored record with its new revision; else it
	// returns an error wrapping ErrJobConflict and changes nothing.
	Update(ctx context.Context, rec *JobRecord) (*JobRecord, error)
}

// ErrSkipUpdate, returned by the function given to UpdateJob, leaves the
// record as it is; UpdateJob then returns the record and no error.
var ErrSkipUpdate = errors.New("skip update")

// UpdateJob applies fn to the latest record of runID and stores the result,
// rereading and reapplying fn when another writer got there first. fn may be
// called more than once and must only change the record it is given.
func UpdateJob(ctx context.Context, store JobStore, runID string, fn func(*JobRecord) error) (*JobRecord, error) {
	for {
		rec, err := store.Get(ctx, runID)
		if err != nil {
			return nil, err
		}
		if err := fn(rec); err != nil {
			if errors.Is(err, ErrSkipUpdate) {
				return rec, nil
			}
			return rec, err
		}
		rec.UpdatedAt = time.Now().UTC()
		updated, err := store.Update(ctx, rec)
		if errors.Is(err, ErrJobConflict) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update job %s: %w", runID, err)
		}
		return updated, nil
	}
}

// Queue is the task queue of accepted jobs; runners take tasks from it.
type Queue interface {
	// Enqueue adds a task for runID. Enqueuing the same run id again while
	// its task is still recent is a no-op, so a retried submission does not
	// queue the job twice; a duplicate that slips through is harmless, as
	// runners check the job's record before running it.
	Enqueue(ctx context.Context, runID string) error
}

// Notifier delivers a run's callbacks. Its methods never block on the
// receiver: a slow or dead receiver must not slow a job.
type Notifier interface {
	// Progress reports p to callbackURL; reports not yet sent may be
	// replaced by later ones of the same run.
	Progress(callbackURL string, p Progress)
	// Finished says that the record of runID has reached a final state; the
	// notifier delivers its complete or error callback once and records the
	// delivery in the JobStore.
	Finished(runID string)
}

// JobRunner runs jobs; *Runner is one.
type JobRunner interface {
	Run(ctx context.Context, job *Job, progress func(Progress)) (*Result, error)
}

var _ JobRunner = (*Runner)(nil)
