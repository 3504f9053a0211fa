package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
)

// slowRule joins on the shared key with a subquery that reads no source and
// takes DuckDB hours, so the job is still in this rule when the test acts.
var slowRule = map[string]any{"name": "slow", "match_sql": `SELECT l.invoice_id, r.payment_id FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id
	WHERE (SELECT count(*) FROM (SELECT unnest(generate_series(1, 200000)) AS range) a, (SELECT unnest(generate_series(1, 1000000)) AS range) b WHERE a.range + b.range < 0) = 0`}

// progressWhere waits for a progress callback of runID that cond accepts
// and returns it.
func progressWhere(t *testing.T, rv *callbackReceiver, runID, what string, cond func(kalla.Progress) bool) kalla.Progress {
	t.Helper()
	var found kalla.Progress
	waitUntil(t, what, func() bool {
		for _, b := range rv.of("progress", runID) {
			var p kalla.Progress
			if json.Unmarshal(b, &p) == nil && cond(p) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// cancelJob cancels the running job runID and waits for its error callback
// with stage cancelled.
func cancelJob(t *testing.T, sched *schedProc, rv *callbackReceiver, runID string) {
	t.Helper()
	if code, body := sched.call(t, "DELETE", "/api/jobs/"+runID, nil); code != 202 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	var rep kalla.ErrorReport
	if err := json.Unmarshal(rv.wait(t, "error", runID), &rep); err != nil || rep.Stage != kalla.StageCancelled {
		t.Fatalf("error callback: %+v %v", rep, err)
	}
}

// A job with rules run by the scheduler itself (no executor alive) names
// the rule it is running in its progress callbacks, with the rows the
// earlier rules matched so far: while the third rule runs, the callback
// (re-sent every second) says "slow" and counts what the first two matched
// in `kallad run` of those two alone.
func TestRulesProgressNamesTheRule(t *testing.T) {
	t.Parallel()
	inv, pay := writeRulesFiles(t, t.TempDir(), "parquet")
	first := runLocal(t, rulesJob(t, sharedKeyRules[:2], inv, pay, ""))
	before := first.Rules[0].Matched + first.Rules[1].Matched
	rv := newCallbackReceiver(t)
	sched := startScheduler(t, t.TempDir())

	job := rulesJob(t, append(append([]any{}, sharedKeyRules[:2]...), slowRule), inv, pay, rv.base())
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	p := progressWhere(t, rv, runID, "progress naming the rule slow", func(p kalla.Progress) bool { return p.Rule == "slow" })
	if p.Stage != kalla.StageMatching || p.MatchedSoFar == nil || *p.MatchedSoFar != before || p.Progress != 2.0/3 {
		t.Errorf("progress in rule slow: %+v (matched so far %v), want matching, 2/3 done, %d matched", p, p.MatchedSoFar, before)
	}
	// The job's record is saved apart from the callbacks, soon after.
	waitUntil(t, "GET /api/jobs/{run_id} in rule slow", func() bool {
		v := sched.job(t, runID)
		return v.State == kalla.JobRunning && v.Stage == kalla.StageMatching && v.Rule == "slow"
	})
	cancelJob(t, sched, rv, runID)
}

// In cluster mode every match task runs all the rules over its partition,
// so no one rule is running: the matching progress counts the match tasks
// done, names no rule, and carries the rows read. (A job run whole on one
// executor reports no progress between staging and its end.)
func TestClusterRulesProgressCountsTasks(t *testing.T) {
	t.Parallel()
	inv, pay := writeRulesFiles(t, t.TempDir(), "parquet")
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	sched := startScheduler(t, data, "KALLA_TASK_ACK_WAIT=3s")
	startExecutor(t, sched, filepath.Join(data, "staging"))

	job := rulesJob(t, append(append([]any{}, sharedKeyRules[:2]...), slowRule), inv, pay, rv.base())
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	p := progressWhere(t, rv, runID, "matching progress", func(p kalla.Progress) bool { return p.Stage == kalla.StageMatching })
	if p.Rule != "" || p.Progress != 0 || p.RowsRead != 3000+3460 {
		t.Errorf("matching progress %+v, want no rule, no task done yet, 6460 rows read", p)
	}
	cancelJob(t, sched, rv, runID)
}
