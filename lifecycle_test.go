package kalla_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

var (
	allStates   = []kalla.JobState{kalla.JobQueued, kalla.JobRunning, kalla.JobCompleted, kalla.JobFailed, kalla.JobCancelled}
	allOutcomes = []kalla.AttemptOutcome{"", kalla.OutcomeCompleted, kalla.OutcomeFailed, kalla.OutcomeCancelled, kalla.OutcomeRequeued, kalla.OutcomeLost}
)

// record is a job in state: a queued one was requeued once, a running one
// holds its second attempt, a final one ended in its second.
func record(state kalla.JobState) *kalla.JobRecord {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Second)
	rec := &kalla.JobRecord{
		RunID: "0b6f6f5e-3f7c-4a36-9d57-2f3e8a1c0001", State: state, CreatedAt: t0, UpdatedAt: t0, StartedAt: &t0, TaskSeq: 4,
		Attempts: []kalla.Attempt{{Number: 1, StartedAt: t0, EndedAt: &t1, Outcome: kalla.OutcomeRequeued, Error: "scheduler shutting down"}},
		Progress: &kalla.Progress{Stage: kalla.StageMatching, Progress: 0.5},
	}
	switch {
	case state == kalla.JobRunning:
		rec.Attempts = append(rec.Attempts, kalla.Attempt{Number: 2, StartedAt: t1})
	case state.Final():
		rec.Attempts = append(rec.Attempts, kalla.Attempt{Number: 2, StartedAt: t1, EndedAt: &t1, Outcome: kalla.AttemptOutcome(state)})
		rec.FinishedAt = &t1
	}
	return rec
}

// move is a well-formed move to `to`: the details each target needs.
func move(to kalla.JobState, outcome kalla.AttemptOutcome, at time.Time) kalla.Move {
	m := kalla.Move{To: to, Outcome: outcome, At: at}
	switch to {
	case kalla.JobRunning:
		m.TaskSeq = 9
	case kalla.JobCompleted:
		m.Result = &kalla.Result{MatchedCount: 3}
	case kalla.JobFailed:
		m.Report = &kalla.ErrorReport{Stage: kalla.StageMatching, Error: "boom"}
	case kalla.JobQueued:
		m.Reason = "why"
	}
	return m
}

// Every (from, to, outcome) is tried; exactly the moves of the documented
// table succeed, with their effect on the attempts and the final fields,
// and every other one fails with a *MoveError and leaves the record as it
// was.
func TestJobRecordMoveTable(t *testing.T) {
	t.Parallel()
	legal := map[string]bool{
		"queued→running":              true, // start
		"queued→cancelled":            true, // cancel request, or found at start
		"queued→failed":               true, // give up
		"running→completed/completed": true,
		"running→failed/failed":       true, // an error or the timeout
		"running→cancelled/cancelled": true,
		"running→queued/requeued":     true, // shutdown
		"running→queued/lost":         true, // the runner died
	}
	at := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	seen := 0
	for _, from := range allStates {
		for _, to := range allStates {
			for _, outcome := range allOutcomes {
				name := fmt.Sprintf("%s→%s", from, to)
				if outcome != "" {
					name += "/" + string(outcome)
				}
				t.Run(name, func(t *testing.T) {
					rec, before := record(from), record(from)
					m := move(to, outcome, at)
					err := rec.Move(m)
					if !legal[name] {
						var me *kalla.MoveError
						if !errors.As(err, &me) || !errors.Is(err, kalla.ErrIllegalMove) || me.From != from || me.To != to || me.Outcome != outcome {
							t.Fatalf("Move = %v, want a *MoveError from %s to %s", err, from, to)
						}
						if !reflect.DeepEqual(rec, before) {
							t.Errorf("an illegal move changed the record:\n got %+v\nwant %+v", rec, before)
						}
						return
					}
					if err != nil {
						t.Fatalf("Move: %v", err)
					}
					seen++
					checkMoved(t, before, rec, m)
				})
			}
		}
	}
	if seen != len(legal) {
		t.Errorf("%d legal moves succeeded, the table has %d", seen, len(legal))
	}
}

// checkMoved checks the effect of the legal move m from before to rec.
func checkMoved(t *testing.T, before, rec *kalla.JobRecord, m kalla.Move) {
	t.Helper()
	if rec.State != m.To {
		t.Errorf("state %s, want %s", rec.State, m.To)
	}
	wantReport := m.Report
	if m.To == kalla.JobCancelled {
		wantReport = kalla.CancelReport(rec.RunID)
	}
	if before.State == kalla.JobRunning {
		at := rec.Attempts[len(before.Attempts)-1]
		wantErr := m.Reason
		if wantReport != nil {
			wantErr = wantReport.Error
		}
		if at.EndedAt == nil || !at.EndedAt.Equal(m.At) || at.Outcome != m.Outcome || at.Error != wantErr {
			t.Errorf("ended attempt %+v, want ended at %s as %q with error %q", at, m.At, m.Outcome, wantErr)
		}
	} else if !reflect.DeepEqual(rec.Attempts[:len(before.Attempts)], before.Attempts) {
		t.Errorf("a move out of %s changed the attempts: %+v", before.State, rec.Attempts)
	}
	switch {
	case m.To == kalla.JobRunning:
		n := len(rec.Attempts)
		if n != len(before.Attempts)+1 || rec.Attempts[n-1].Number != n || !rec.Attempts[n-1].StartedAt.Equal(m.At) || rec.Attempts[n-1].EndedAt != nil {
			t.Errorf("start opened no new attempt: %+v", rec.Attempts)
		}
		if rec.TaskSeq != m.TaskSeq || rec.Progress != nil || !rec.StartedAt.Equal(*before.StartedAt) {
			t.Errorf("start: task %d (want %d), progress %+v (want none), started %s (want the first start)", rec.TaskSeq, m.TaskSeq, rec.Progress, rec.StartedAt)
		}
	case m.To.Final():
		if rec.FinishedAt == nil || !rec.FinishedAt.Equal(m.At) || !reflect.DeepEqual(rec.Result, m.Result) || !reflect.DeepEqual(rec.Error, wantReport) {
			t.Errorf("final: finished %v result %+v error %+v, want %s %+v %+v", rec.FinishedAt, rec.Result, rec.Error, m.At, m.Result, wantReport)
		}
		if len(rec.Attempts) != len(before.Attempts) {
			t.Errorf("a final move opened an attempt: %+v", rec.Attempts)
		}
	default: // back to queued
		if rec.FinishedAt != nil || rec.Result != nil || rec.Error != nil || len(rec.Attempts) != len(before.Attempts) {
			t.Errorf("requeue: %+v", rec)
		}
		if !reflect.DeepEqual(rec.Progress, before.Progress) {
			t.Errorf("the move dropped the progress; the caller decides: %+v", rec.Progress)
		}
	}
}

// A legal pair of states with details that do not fit is refused too.
func TestJobRecordMoveDetails(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		from kalla.JobState
		m    kalla.Move
	}{
		{"no time", kalla.JobQueued, kalla.Move{To: kalla.JobRunning, TaskSeq: 1}},
		{"completed without result", kalla.JobRunning, kalla.Move{To: kalla.JobCompleted, Outcome: kalla.OutcomeCompleted, At: at}},
		{"completed with an error", kalla.JobRunning, kalla.Move{To: kalla.JobCompleted, Outcome: kalla.OutcomeCompleted, At: at, Result: &kalla.Result{}, Report: &kalla.ErrorReport{}}},
		{"failed without report", kalla.JobRunning, kalla.Move{To: kalla.JobFailed, Outcome: kalla.OutcomeFailed, At: at}},
		{"give up without report", kalla.JobQueued, kalla.Move{To: kalla.JobFailed, At: at}},
		{"failed with a result", kalla.JobRunning, kalla.Move{To: kalla.JobFailed, Outcome: kalla.OutcomeFailed, At: at, Result: &kalla.Result{}, Report: &kalla.ErrorReport{}}},
		{"requeue with a report", kalla.JobRunning, kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeRequeued, At: at, Report: &kalla.ErrorReport{}}},
		{"start with a report", kalla.JobQueued, kalla.Move{To: kalla.JobRunning, At: at, Report: &kalla.ErrorReport{}}},
		{"running to running", kalla.JobRunning, kalla.Move{To: kalla.JobRunning, Outcome: kalla.OutcomeLost, At: at}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, before := record(c.from), record(c.from)
			if err := rec.Move(c.m); !errors.Is(err, kalla.ErrIllegalMove) {
				t.Fatalf("Move = %v, want ErrIllegalMove", err)
			}
			if !reflect.DeepEqual(rec, before) {
				t.Errorf("a refused move changed the record: %+v", rec)
			}
		})
	}
}

// A runner that died and whose job is started again, or given up, in one
// update: the moves compose (the requeued attempt does not count, the lost
// and the new one do), and the give-up still sees the dead attempt.
func TestJobRecordTakeOver(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	rec := record(kalla.JobRunning)
	if err := rec.Move(kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeLost, At: at, Reason: "no heartbeats"}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Move(kalla.Move{To: kalla.JobRunning, At: at, TaskSeq: 4}); err != nil {
		t.Fatal(err)
	}
	if rec.AttemptsUsed() != 2 || len(rec.Attempts) != 3 || rec.Attempts[1].Outcome != kalla.OutcomeLost || !rec.HeldBy(4, 3) || rec.HeldBy(4, 2) || rec.HeldBy(5, 3) {
		t.Errorf("after a take-over: used %d, held by (4,3) %v: %+v", rec.AttemptsUsed(), rec.HeldBy(4, 3), rec.Attempts)
	}
	rec = record(kalla.JobRunning)
	_ = rec.Move(kalla.Move{To: kalla.JobQueued, Outcome: kalla.OutcomeLost, At: at, Reason: "no heartbeats"})
	if err := rec.Move(kalla.Move{To: kalla.JobFailed, At: at, Report: &kalla.ErrorReport{Error: "gave up"}}); err != nil {
		t.Fatal(err)
	}
	if rec.State != kalla.JobFailed || rec.Attempts[1].Error != "no heartbeats" || rec.Progress == nil || rec.HeldBy(4, 2) {
		t.Errorf("after a give-up: %+v", rec)
	}
}

// A cancel request cancels a queued job at once, marks a running one for
// its runner, is a no-op twice, and is refused once the job ended.
func TestJobRecordRequestCancel(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	cases := []struct {
		from      kalla.JobState
		requested bool
		cancelled bool
		want      error
		state     kalla.JobState
	}{
		{kalla.JobQueued, false, true, nil, kalla.JobCancelled},
		{kalla.JobRunning, false, false, nil, kalla.JobRunning},
		{kalla.JobRunning, true, false, kalla.ErrSkipUpdate, kalla.JobRunning},
		{kalla.JobCancelled, true, false, kalla.ErrSkipUpdate, kalla.JobCancelled},
		{kalla.JobCompleted, false, false, kalla.ErrIllegalMove, kalla.JobCompleted},
		{kalla.JobFailed, false, false, kalla.ErrIllegalMove, kalla.JobFailed},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/requested=%v", c.from, c.requested), func(t *testing.T) {
			rec := record(c.from)
			rec.CancelRequested = c.requested
			cancelled, err := rec.RequestCancel(at)
			if cancelled != c.cancelled || !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("RequestCancel = %v, %v; want %v, %v", cancelled, err, c.cancelled, c.want)
			}
			if rec.State != c.state || (err == nil && !rec.CancelRequested) {
				t.Errorf("state %s, cancel requested %v", rec.State, rec.CancelRequested)
			}
			if c.cancelled && !reflect.DeepEqual(rec.Error, kalla.CancelReport(rec.RunID)) {
				t.Errorf("error %+v, want the cancel report", rec.Error)
			}
		})
	}
}

// The outcomes keep the JSON values the API has always shown.
func TestAttemptOutcomeJSON(t *testing.T) {
	t.Parallel()
	want := map[kalla.AttemptOutcome]string{
		kalla.OutcomeCompleted: "completed", kalla.OutcomeFailed: "failed", kalla.OutcomeCancelled: "cancelled",
		kalla.OutcomeRequeued: "requeued", kalla.OutcomeLost: "lost",
	}
	for o, s := range want {
		b, err := json.Marshal(kalla.Attempt{Outcome: o})
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil || back["outcome"] != s {
			t.Errorf("outcome %q marshals as %s", o, b)
		}
	}
}
