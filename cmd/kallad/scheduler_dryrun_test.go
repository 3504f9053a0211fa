package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
)

// dryRun POSTs job to /api/jobs?dry_run=true and returns the status and
// the body.
func (p *schedProc) dryRun(t *testing.T, job any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return p.call(t, "POST", "/api/jobs?dry_run=true", body)
}

// listed is how many runs GET /api/jobs shows.
func (p *schedProc) listed(t *testing.T) int {
	t.Helper()
	code, body := p.call(t, "GET", "/api/jobs", nil)
	var list kallahttp.JobList
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /api/jobs: %d %s", code, body)
	}
	return len(list.Jobs)
}

// POST /api/jobs?dry_run=true answers the counts `kallad run` computes,
// rule by rule, and keeps nothing: no output folder, no record, no
// callback; its run id stays free for the real submission, whose result
// has the same counts.
func TestSchedulerDryRun(t *testing.T) {
	t.Parallel()
	rv := newCallbackReceiver(t)
	sched := startScheduler(t, t.TempDir())
	out := filepath.Join(t.TempDir(), "out")
	job := exampleRulesJob(t, rv.base(), out)
	runID := job["run_id"].(string)

	code, body := sched.dryRun(t, job)
	var dry kalla.Result
	if code != 200 || json.Unmarshal(body, &dry) != nil {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if dry.RunID != runID || strings.Contains(string(body), "output_paths") {
		t.Errorf("dry run answer: %s", body)
	}
	sameCounts(t, dry, runLocal(t, job))
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run created its output folder: %v", err)
	}
	if n := sched.listed(t); n != 0 {
		t.Errorf("GET /api/jobs lists %d runs after a dry run", n)
	}

	// A real job to the same receiver: once its callbacks are in, the dry
	// run's would have been too.
	other := exampleRulesJob(t, rv.base(), filepath.Join(t.TempDir(), "other"))
	if code, body := sched.submit(t, other); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	rv.wait(t, "complete", other["run_id"].(string))
	for _, kind := range []string{"progress", "complete", "error"} {
		if n := len(rv.of(kind, runID)); n != 0 {
			t.Errorf("the dry run sent %d %s callbacks", n, kind)
		}
	}

	// The run id is free.
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submitting the dry run's run_id: %d %s, want 202", code, body)
	}
	var real kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &real); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, dry, real)
	if _, err := os.Stat(filepath.Join(out, kalla.MatchedFile)); err != nil {
		t.Errorf("the real run wrote no matched file: %v", err)
	}

	// run_id is optional for a dry run.
	delete(job, "run_id")
	code, body = sched.dryRun(t, job)
	var anon kalla.Result
	if code != 200 || json.Unmarshal(body, &anon) != nil || anon.MatchedCount != dry.MatchedCount {
		t.Fatalf("dry run without run_id: %d %s", code, body)
	}
	if _, err := uuid.Parse(anon.RunID); err != nil || anon.RunID == runID {
		t.Errorf("dry run without run_id answered run_id %q", anon.RunID)
	}
}

// A dry run takes one of the --max-jobs slots the queued jobs run in: with
// it running, another dry run gets 429 and a submitted job waits; when its
// client leaves, the run stops and the job runs.
func TestSchedulerDryRunSharesJobSlots(t *testing.T) {
	t.Parallel()
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--max-jobs", "1"})
	slow := exampleJob(t, "", filepath.Join(t.TempDir(), "slow"))
	slow["match_sql"] = slowMatchSQL
	raw, _ := json.Marshal(slow)
	ctx, leave := context.WithCancel(t.Context())
	defer leave()
	req, err := http.NewRequestWithContext(ctx, "POST", sched.url+"/api/jobs?dry_run=true", strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		answered <- err
	}()
	waitUntil(t, "the slow dry run to take the job slot", func() bool {
		return strings.Contains(sched.logs(), "dry run started") && sched.metric(t, "kallad_active_jobs") == "1"
	})
	_, body := sched.call(t, "GET", "/ready", nil)
	if !strings.Contains(string(body), `"saturated":true`) {
		t.Errorf("/ready with the only slot taken by a dry run: %s", body)
	}

	resp, err := http.Post(sched.url+"/api/jobs?dry_run=true", "application/json", strings.NewReader(string(mustJSONBytes(t, exampleJob(t, "", t.TempDir())))))
	if err != nil {
		t.Fatal(err)
	}
	var e kallahttp.ErrorBody
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 429 || e.Code != "busy" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second dry run with the slot taken: %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}

	queued := exampleJob(t, "", filepath.Join(t.TempDir(), "queued"))
	queuedID := queued["run_id"].(string)
	if code, body := sched.submit(t, queued); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "the job in the queue", func() bool { return sched.metric(t, "kallad_queue_depth") == "1" })
	if v := sched.job(t, queuedID); v.State != kalla.JobQueued {
		t.Fatalf("job %s while a dry run holds the only slot, want queued", v.State)
	}

	left := time.Now()
	leave()
	if err := <-answered; !errors.Is(err, context.Canceled) {
		t.Errorf("the slow dry run's request ended with %v", err)
	}
	waitUntil(t, "the dry run to stop", func() bool { return strings.Contains(sched.logs(), "dry run cancelled: the client went away") })
	v := sched.waitState(t, queuedID, kalla.JobCompleted)
	if v.StartedAt == nil || v.StartedAt.Before(left) {
		t.Errorf("the job started at %v, before the dry run gave its slot back (%v)", v.StartedAt, left)
	}
	waitUntil(t, "no job active", func() bool { return sched.metric(t, "kallad_active_jobs") == "0" })
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A dry run passes the gates a submission passes: the bearer token, the
// SQL sandbox, the path and host allow-lists; it also reports what only
// binding the rules can tell (400 naming the field), and it stops at
// --job-timeout. Nothing of it is kept, and no secret leaks.
func TestSchedulerDryRunGates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("password\n"+secretMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed")
	const token = "dry-t0ken"
	sched := startSchedulerArgs(t, filepath.Join(dir, "data"), []string{"--job-timeout", "3s"},
		"KALLA_API_TOKEN="+token, "KALLA_ALLOW_PATHS="+examplesDir(t)+","+allowed)
	out := filepath.Join(allowed, "out")

	// No token: 401, and nothing runs.
	sched.Token = ""
	if code, body := sched.dryRun(t, exampleRulesJob(t, "", out)); code != 401 {
		t.Errorf("dry run without the token: %d %s", code, body)
	}
	sched.Token = token
	if strings.Contains(sched.logs(), "dry run started") {
		t.Errorf("a dry run without the token ran")
	}

	type refusal struct {
		name   string
		mutate func(job map[string]any)
		field  string
		says   string
		// submitToo: a real submission gets the same 400 (the others need
		// the rules bound to the sources' columns, which only running does).
		submitToo bool
	}
	rule := func(job map[string]any, i int) map[string]any { return job["rules"].([]any)[i].(map[string]any) }
	cases := []refusal{
		{"read_text in a rule", func(j map[string]any) {
			rule(j, 1)["match_sql"] = "SELECT 1 AS invoice_id, 1 AS payment_id, content FROM read_text('" + secret + "')"
		}, "rules[1].match_sql", "read_text", true},
		{"source outside the allowed paths", func(j map[string]any) {
			j["sources"].([]any)[0].(map[string]any)["uri"] = secret
		}, "sources[0].uri", "", true},
		{"output outside the allowed paths", func(j map[string]any) { j["output_path"] = filepath.Join(dir, "elsewhere") }, "output_path", "", true},
		{"callback to the metadata address", func(j map[string]any) { j["callback_url"] = "http://169.254.169.254/latest" }, "callback_url", "", true},
		{"duplicate rule name", func(j map[string]any) { rule(j, 2)["name"] = "Exact_Ref" }, "rules[2].name", "duplicate", true},
		{"order_by not returned", func(j map[string]any) {
			rule(j, 1)["exclusive"] = map[string]any{"order_by": []any{"amount_gap"}}
		}, "rules[1].exclusive.order_by[0]", "amount_gap", false},
		{"one column, two types", func(j map[string]any) {
			rule(j, 1)["match_sql"] = "SELECT i.invoice_id, p.payment_id, 'x' AS invoice_amount, abs(i.amount - p.amount) AS amount_diff FROM left_src i JOIN right_src p ON tolerance_match(i.amount, p.amount, 1.00)"
		}, "rules[1].match_sql", "invoice_amount", false},
		{"reserved column prefix", func(j map[string]any) {
			rule(j, 0)["match_sql"] = "SELECT i.invoice_id, p.payment_id, 1 AS _kalla_score FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id"
		}, "rules[0].match_sql", "_kalla_", false},
		{"no key of a side", func(j map[string]any) {
			rule(j, 2)["match_sql"] = "SELECT i.invoice_id, abs(date_diff('day', i.issued_on, p.paid_on)) AS day_gap FROM left_src i JOIN right_src p ON p.payer = i.customer"
		}, "rules[2].match_sql", "payment_id", false},
	}
	for _, tc := range cases {
		job := exampleRulesJob(t, "", out)
		tc.mutate(job)
		code, body := sched.dryRun(t, job)
		var e kallahttp.ErrorBody
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Field != tc.field || e.Code != "invalid_job" || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s: dry run %d %s; want 400 on %s mentioning %q", tc.name, code, body, tc.field, tc.says)
		}
		if strings.Contains(string(body), secretMarker) {
			t.Errorf("%s: the answer leaks the secret file", tc.name)
		}
		if tc.submitToo {
			if code, sub := sched.submit(t, job); code != 400 || string(sub) != string(body) {
				t.Errorf("%s: submit %d %s, dry run %s", tc.name, code, sub, body)
			}
		}
	}

	// A dry run past --job-timeout stops and says so.
	slow := exampleRulesJob(t, "", out)
	rule(slow, 1)["match_sql"] = slowMatchSQL
	delete(rule(slow, 1), "exclusive")
	start := time.Now()
	code, body := sched.dryRun(t, slow)
	var e kallahttp.ErrorBody
	if code != 422 || json.Unmarshal(body, &e) != nil || e.Code != "job_failed" || e.Error != "job exceeded --job-timeout 3s" || e.Stage != kalla.StageMatching {
		t.Errorf("dry run past --job-timeout: %d %s", code, body)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the dry run stopped %s after it started, with --job-timeout 3s", d)
	}

	if n := sched.listed(t); n != 0 {
		t.Errorf("GET /api/jobs lists %d runs after refused and dry runs", n)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run created the output folder: %v", err)
	}
	if strings.Contains(sched.logs(), secretMarker) {
		t.Errorf("the scheduler's log shows the secret file")
	}
}
