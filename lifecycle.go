package kalla

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// JobState is where an accepted job stands. Every change of state is a
// Move (the table below) applied to the job's record and stored by a
// conditional update (see JobStore.Update, UpdateJob), so two processes
// that race to move the same job cannot both win.
//
//	           ┌───────── requeue (shutdown) / lost (runner died) ─────────┐
//	           v                                                           │
//	create ─> queued ──────────────── start ──────────────────────────> running ──> completed
//	           │ │                                                          ├─────> failed (error, timeout)
//	           │ └──── give up (last attempt used) ──> failed               └─────> cancelled
//	           └────── cancel ──────────────────────> cancelled
type JobState string

// The job states, and who moves a job out of each.
const (
	// JobQueued: accepted and waiting in the task queue. The runner that
	// receives its task moves it to running (start), or, finding a cancel
	// request or the last attempt used, to cancelled or failed; a cancel
	// request (the HTTP API) moves it to cancelled.
	JobQueued JobState = "queued"
	// JobRunning: an attempt of a runner holds it (JobRecord.HeldBy), and
	// only that attempt moves it: to completed, failed (an error or the job
	// timeout) or cancelled (on request), or back to queued when its
	// runner shuts down first (outcome requeued). If the runner dies, the
	// task is redelivered and the runner receiving it ends the dead
	// attempt as lost (back to queued) and, in the same update, starts the
	// next attempt or gives up.
	JobRunning JobState = "running"
	// JobCompleted, JobFailed and JobCancelled are final: nothing moves a
	// job out of them.
	JobCompleted JobState = "completed"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Final reports whether nothing moves a job out of s.
func (s JobState) Final() bool {
	return s == JobCompleted || s == JobFailed || s == JobCancelled
}

// AttemptOutcome is how one attempt of a job ended; the API shows it as
// attempts[].outcome (http/openapi.yaml), so the values are fixed.
type AttemptOutcome string

// The attempt outcomes. Empty while the attempt runs.
const (
	OutcomeCompleted AttemptOutcome = "completed"
	OutcomeFailed    AttemptOutcome = "failed" // an error, or the job timeout
	OutcomeCancelled AttemptOutcome = "cancelled"
	// OutcomeRequeued: its runner shut down first and put the job back in
	// the queue; it does not count against the attempt limit.
	OutcomeRequeued AttemptOutcome = "requeued"
	// OutcomeLost: its runner died (stopped heartbeating) and another
	// runner took the job over.
	OutcomeLost AttemptOutcome = "lost"
)

// Move is one change of a job's state, applied by JobRecord.Move.
type Move struct {
	To JobState
	// Outcome ends the attempt that holds a running job; a queued job has
	// none, so a move out of queued takes none.
	Outcome AttemptOutcome
	At      time.Time
	// TaskSeq is the queue task that holds the job from a start on.
	TaskSeq uint64
	// Result is the result of a completed job.
	Result *Result
	// Report is the error of a failed or cancelled job (the body of its
	// error callback), also kept on the attempt it ends. A cancel without
	// one gets CancelReport.
	Report *ErrorReport
	// Reason is the error kept on an attempt requeued or lost.
	Reason string
}

// moveRule is one row of the table of allowed moves.
type moveRule struct {
	from, to JobState
	// outcomes the holding attempt may end with; none out of queued.
	outcomes []AttemptOutcome
	// by says who makes the move.
	by string
}

// moves is the table of allowed moves; docs/architecture.md repeats it.
// Any move not in it is refused with a *MoveError.
var moves = []moveRule{
	{JobQueued, JobRunning, nil, "the runner that receives the job's task (start: opens the next attempt)"},
	{JobQueued, JobCancelled, nil, "a cancel request; or the runner receiving the task finds one"},
	{JobQueued, JobFailed, nil, "the runner receiving the task, when the last attempt is used (give up)"},
	{JobRunning, JobCompleted, []AttemptOutcome{OutcomeCompleted}, "the holding attempt"},
	{JobRunning, JobFailed, []AttemptOutcome{OutcomeFailed}, "the holding attempt: an error, or the job timeout"},
	{JobRunning, JobCancelled, []AttemptOutcome{OutcomeCancelled}, "the holding attempt, stopped by a cancel request"},
	{JobRunning, JobQueued, []AttemptOutcome{OutcomeRequeued}, "the holding attempt, when its runner shuts down"},
	{JobRunning, JobQueued, []AttemptOutcome{OutcomeLost}, "the runner that receives the task of a runner that died"},
}

// ErrIllegalMove is wrapped by every *MoveError.
var ErrIllegalMove = errors.New("illegal job state move")

// MoveError is a move the table does not allow from the record's state.
type MoveError struct {
	RunID    string
	From, To JobState
	Outcome  AttemptOutcome
	// Why, when the move's details are what is wrong.
	Why string
}

func (e *MoveError) Error() string {
	msg := fmt.Sprintf("job %s: no move from %s to %s", e.RunID, e.From, e.To)
	if e.Outcome != "" {
		msg += fmt.Sprintf(" with attempt outcome %q", e.Outcome)
	}
	if e.Why != "" {
		msg += ": " + e.Why
	}
	return msg
}

func (e *MoveError) Unwrap() error { return ErrIllegalMove }

// Move applies m to rec if the table allows it from rec's state, and
// returns a *MoveError, changing nothing, if not. Out of running it ends
// the holding attempt with m.Outcome; into running it opens the next
// attempt; into a final state it sets the result or error and FinishedAt.
// It checks the state only: the caller checks that it holds the job
// (HeldBy), and the store's conditional update guards against a race.
func (rec *JobRecord) Move(m Move) error {
	if err := rec.allowed(m); err != nil {
		return err
	}
	if m.To == JobCancelled && m.Report == nil {
		m.Report = CancelReport(rec.RunID)
	}
	if rec.State == JobRunning {
		if n := len(rec.Attempts); n > 0 && rec.Attempts[n-1].EndedAt == nil {
			at := &rec.Attempts[n-1]
			at.EndedAt, at.Outcome, at.Error = &m.At, m.Outcome, m.Reason
			if m.Report != nil {
				at.Error = m.Report.Error
			}
		}
	}
	rec.State = m.To
	switch {
	case m.To == JobRunning:
		rec.TaskSeq = m.TaskSeq
		rec.Progress = nil
		rec.Attempts = append(rec.Attempts, Attempt{Number: len(rec.Attempts) + 1, StartedAt: m.At})
		if rec.StartedAt == nil {
			rec.StartedAt = &m.At
		}
	case m.To.Final():
		rec.Result, rec.Error, rec.FinishedAt = m.Result, m.Report, &m.At
	}
	return nil
}

// allowed checks m against the table and the details each target needs.
func (rec *JobRecord) allowed(m Move) error {
	illegal := func(why string) error {
		return &MoveError{RunID: rec.RunID, From: rec.State, To: m.To, Outcome: m.Outcome, Why: why}
	}
	var rule *moveRule
	for i := range moves {
		if moves[i].from == rec.State && moves[i].to == m.To && (m.Outcome == "" && moves[i].outcomes == nil || slices.Contains(moves[i].outcomes, m.Outcome)) {
			rule = &moves[i]
			break
		}
	}
	switch {
	case rule == nil && rec.State.Final():
		return illegal("the job already ended")
	case rule == nil:
		return illegal("")
	case m.At.IsZero():
		return illegal("the move has no time")
	case m.To == JobCompleted && (m.Result == nil || m.Report != nil):
		return illegal("a completed job has a result and no error")
	case m.To != JobCompleted && m.Result != nil:
		return illegal("only a completed job has a result")
	case m.To == JobFailed && m.Report == nil:
		return illegal("a failed job needs its error report")
	case !m.To.Final() && m.Report != nil:
		return illegal("only a failed or cancelled job has an error report")
	}
	return nil
}

// CancelReport is the error of a job cancelled on request: the body of its
// error callback, with stage "cancelled".
func CancelReport(runID string) *ErrorReport {
	return &ErrorReport{RunID: runID, Stage: StageCancelled, Error: ErrCancelled.Error()}
}

// RequestCancel applies a cancel request to rec: a queued job is cancelled
// at once (it will never run) and RequestCancel reports true; a running
// one is marked CancelRequested, and the attempt holding it stops and
// moves it. A job already cancelled, or already asked to, is left as it is
// (ErrSkipUpdate); one that completed or failed is a *MoveError.
func (rec *JobRecord) RequestCancel(now time.Time) (cancelled bool, err error) {
	switch {
	case rec.State == JobCancelled, rec.State == JobRunning && rec.CancelRequested:
		return false, ErrSkipUpdate
	case rec.State == JobRunning:
		rec.CancelRequested = true
		return false, nil
	}
	if err := rec.Move(Move{To: JobCancelled, At: now}); err != nil {
		return false, err
	}
	rec.CancelRequested = true
	return true, nil
}

// HeldBy reports whether attempt number n, run for queue task taskSeq,
// holds rec: only the holder moves a running job on. A runner that stalls
// past its heartbeats loses the job to the next delivery of its task,
// whose start names a new attempt.
func (rec *JobRecord) HeldBy(taskSeq uint64, n int) bool {
	return rec.State == JobRunning && rec.TaskSeq == taskSeq && len(rec.Attempts) == n
}

// AttemptsUsed counts the attempts that count against the attempt limit:
// all but those requeued at a shutdown.
func (rec *JobRecord) AttemptsUsed() int {
	n := 0
	for _, at := range rec.Attempts {
		if at.Outcome != OutcomeRequeued {
			n++
		}
	}
	return n
}

// NewJobRecord is the record of job accepted at now: queued, no attempt.
func NewJobRecord(job *Job, now time.Time) *JobRecord {
	return &JobRecord{RunID: job.RunID, Job: *job, State: JobQueued, CreatedAt: now, UpdatedAt: now}
}
