package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// seedPostgres creates invoices and payments in a schema of its own: 1000
// invoices, a payment within a cent for 900 of them, 50 payments of nothing.
func seedPostgres(t *testing.T) *kallatest.DB {
	t.Helper()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE invoices (invoice_id int PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL)`)
	db.Exec(t, `CREATE TABLE payments (payment_id int PRIMARY KEY, invoice_ref int, amount numeric(12,2) NOT NULL)`)
	db.Exec(t, `INSERT INTO invoices SELECT g, 'c' || (g % 37), (g * 7 % 1000) + 0.25 FROM generate_series(1, 1000) g`)
	db.Exec(t, `INSERT INTO payments SELECT g, g, (g * 7 % 1000) + 0.25 + (g % 3) * 0.005 FROM generate_series(1, 900) g`)
	db.Exec(t, `INSERT INTO payments SELECT 10000 + g, 5000 + g, 1 FROM generate_series(1, 50) g`)
	return db
}

// lockTable holds an ACCESS EXCLUSIVE lock on table in a transaction the
// caller commits (or that is rolled back when the test ends), so a job
// reading it blocks in Postgres until then.
func lockTable(t *testing.T, db *kallatest.DB, table string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{db.Schema, table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitLockWaiter waits until a session waits for the lock lockTable holds
// on table: a job reading it is then past its validation and blocked in
// Postgres. "running" alone is not enough: a job is running from the moment
// it is taken, while it still validates its sources and callback URL.
func waitLockWaiter(t *testing.T, db *kallatest.DB, table string) {
	t.Helper()
	rel := pgx.Identifier{db.Schema, table}.Sanitize()
	waitUntil(t, "a job to wait for the lock on "+table, func() bool {
		var n int
		err := db.Pool.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass", rel).Scan(&n)
		return err == nil && n > 0
	})
}

func postgresJob(db *kallatest.DB, callbackURL, outputPath string) map[string]any {
	return map[string]any{
		"run_id":       kalla.NewRunID(),
		"callback_url": callbackURL,
		"match_sql": `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
			FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`,
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": db.TableURI("invoices")},
			map[string]any{"alias": "right_src", "uri": db.TableURI("payments"),
				"filters": []any{map[string]any{"column": "amount", "op": "gt", "value": 0}}},
		},
		"output_path":  outputPath,
		"primary_keys": map[string]any{"left_src": []any{"invoice_id"}, "right_src": []any{"payment_id"}},
	}
}

// A job over Postgres submitted over HTTP reports progress and completes
// with the payload `kallad run` prints for the same job; resubmitting it
// answers its state and does not run it again.
func TestSchedulerEndToEnd(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	rv := newCallbackReceiver(t)
	sched := startScheduler(t, t.TempDir())
	out := t.TempDir()
	job := postgresJob(db, rv.base(), out)
	runID := job["run_id"].(string)

	code, body := sched.submit(t, job)
	var acc kallahttp.Accepted
	if code != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.RunID != runID || acc.Status != "accepted" {
		t.Fatalf("submit: %d %s", code, body)
	}
	var got kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &got); err != nil {
		t.Fatal(err)
	}
	if got.MatchedCount != 900 || got.UnmatchedLeftCount != 100 || got.UnmatchedRightCount != 50 || got.LeftCount != 1000 || got.RightCount != 950 {
		t.Errorf("complete payload counts: %+v", got)
	}
	stages := rv.stages(runID)
	for _, s := range []kalla.Stage{kalla.StageStaging, kalla.StageMatching, kalla.StageWriting} {
		if !stages[s] {
			t.Errorf("no progress callback for stage %s (got %v)", s, stages)
		}
	}

	// The same job through `kallad run` prints the same payload.
	jobPath := filepath.Join(t.TempDir(), "job.json")
	raw, _ := json.Marshal(job)
	if err := os.WriteFile(jobPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, exit := kallad(t, t.TempDir(), "run", jobPath)
	if exit != 0 {
		t.Fatalf("kallad run: exit %d: %s", exit, stderr)
	}
	var want kalla.Result
	if err := json.Unmarshal([]byte(stdout), &want); err != nil {
		t.Fatal(err)
	}
	if g, w := kallatest.Timeless(got), kallatest.Timeless(want); !reflect.DeepEqual(g, w) || got.OutputPaths != want.OutputPaths {
		t.Errorf("scheduler payload %+v\n   kallad run payload %+v", got, want)
	}

	// Resubmission: the run's state, no second run.
	code, body = sched.submit(t, job)
	var view kallahttp.JobView
	if code != http.StatusOK || json.Unmarshal(body, &view) != nil || view.Status != kalla.JobCompleted || view.Result == nil || view.Result.MatchedCount != 900 {
		t.Fatalf("resubmit: %d %s", code, body)
	}
	view = sched.job(t, runID)
	if len(view.Attempts) != 1 || view.Progress != 1 || view.StartedAt == nil || view.FinishedAt == nil {
		t.Errorf("job view: %+v", view)
	}
	waitUntil(t, "complete callback recorded", func() bool { return sched.job(t, runID).Callback.Delivered })
	if n := len(rv.of("complete", runID)); n != 1 {
		t.Errorf("%d complete callbacks, want 1", n)
	}
	code, body = sched.call(t, "GET", "/api/jobs", nil)
	if code != 200 || !strings.Contains(string(body), runID) {
		t.Errorf("list: %d %s", code, body)
	}
	if v := sched.metric(t, "kallad_jobs_completed_total"); v != "1" {
		t.Errorf("kallad_jobs_completed_total = %s", v)
	}
	if v := sched.metric(t, "kallad_rows_processed_total"); v != "1950" {
		t.Errorf("kallad_rows_processed_total = %s", v)
	}
	if err := sched.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// Cancelling a running job stops DuckDB promptly and sends the error
// callback with stage "cancelled"; a queued job is cancelled without running.
func TestSchedulerCancel(t *testing.T) {
	t.Parallel()
	rv := newCallbackReceiver(t)
	sched := startScheduler(t, t.TempDir(), "MAX_CONCURRENT_JOBS=1")
	running := exampleJob(t, rv.base(), t.TempDir())
	running["match_sql"] = slowMatchSQL
	queued := exampleJob(t, rv.base(), t.TempDir())
	queued["match_sql"] = slowMatchSQL
	runID, queuedID := running["run_id"].(string), queued["run_id"].(string)

	if code, body := sched.submit(t, running); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "matching progress", func() bool { return rv.stages(runID)[kalla.StageMatching] })
	if code, body := sched.submit(t, queued); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	if v := sched.job(t, queuedID); v.State != kalla.JobQueued {
		t.Fatalf("second job with --max-jobs 1: %s", v.State)
	}
	if v := sched.metric(t, "kallad_queue_depth"); v != "1" {
		t.Errorf("kallad_queue_depth = %s, want 1", v)
	}
	resp, err := http.Get(sched.url + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/ready with every job slot taken: %d, want 200 (busy is not unready)", resp.StatusCode)
	}

	code, body := sched.call(t, "DELETE", "/api/jobs/"+queuedID, nil)
	var view kallahttp.JobView
	if code != 200 || json.Unmarshal(body, &view) != nil || view.State != kalla.JobCancelled {
		t.Fatalf("cancel queued: %d %s", code, body)
	}
	var rep kalla.ErrorReport
	if err := json.Unmarshal(rv.wait(t, "error", queuedID), &rep); err != nil || rep.Stage != kalla.StageCancelled {
		t.Fatalf("error callback of the queued job: %+v %v", rep, err)
	}

	start := time.Now()
	if code, body := sched.call(t, "DELETE", "/api/jobs/"+runID, nil); code != 202 {
		t.Fatalf("cancel running: %d %s", code, body)
	}
	if err := json.Unmarshal(rv.wait(t, "error", runID), &rep); err != nil || rep.Stage != kalla.StageCancelled {
		t.Fatalf("error callback of the running job: %+v %v", rep, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("cancel took %s", d)
	}
	t.Logf("running job cancelled in %s", time.Since(start))
	view = sched.waitState(t, runID, kalla.JobCancelled)
	if view.Stage != kalla.StageCancelled || view.Error == nil {
		t.Errorf("cancelled job view: %+v", view)
	}
	if v := sched.job(t, queuedID); len(v.Attempts) != 0 {
		t.Errorf("the cancelled queued job ran: %+v", v.Attempts)
	}
	if n := len(rv.of("complete", runID)) + len(rv.of("complete", queuedID)); n != 0 {
		t.Errorf("%d complete callbacks for cancelled jobs", n)
	}
	waitUntil(t, "error callbacks recorded", func() bool { return sched.job(t, runID).Callback.Delivered })
	if n, m := len(rv.of("error", runID)), len(rv.of("error", queuedID)); n != 1 || m != 1 {
		t.Errorf("error callbacks: %d and %d, want one each", n, m)
	}
}

// A scheduler killed with SIGKILL while one job runs and another waits
// loses neither: after the restart the waiting job runs, the running one is
// retried, and each completes exactly once.
func TestSchedulerSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	ctx := context.Background()
	// Hold the payments table, so the job blocks in Postgres (running)
	// until the test lets it go.
	tx := lockTable(t, db, "payments")

	rv := newCallbackReceiver(t)
	dataDir := t.TempDir()
	env := []string{"MAX_CONCURRENT_JOBS=1", "KALLA_ACK_WAIT=2s"}
	first := startScheduler(t, dataDir, env...)
	blocked := postgresJob(db, rv.base(), t.TempDir())
	waiting := exampleJob(t, rv.base(), t.TempDir())
	blockedID, waitingID := blocked["run_id"].(string), waiting["run_id"].(string)
	submitted := time.Now()
	for _, j := range []map[string]any{blocked, waiting} {
		if code, body := first.submit(t, j); code != 202 {
			t.Fatalf("submit: %d %s", code, body)
		}
	}
	first.waitState(t, blockedID, kalla.JobRunning)
	if v := first.job(t, waitingID); v.State != kalla.JobQueued {
		t.Fatalf("second job: %s, want queued", v.State)
	}
	// One job runs, one waits since it was submitted.
	if m := first.metric(t, "kallad_active_jobs"); m != "1" {
		t.Errorf("kallad_active_jobs = %s, want 1", m)
	}
	if m := first.metric(t, "kallad_queue_depth"); m != "1" {
		t.Errorf("kallad_queue_depth = %s, want 1", m)
	}
	if w, err := strconv.ParseFloat(first.metric(t, "kallad_queue_oldest_wait_seconds"), 64); err != nil || w <= 0 || w > time.Since(submitted).Seconds() {
		t.Errorf("kallad_queue_oldest_wait_seconds = %v %v, want the time since the submission (at most %s)", w, err, time.Since(submitted))
	}
	first.kill()

	second := startScheduler(t, dataDir, env...)
	rv.wait(t, "complete", waitingID)
	waitUntil(t, "the blocked job's second attempt", func() bool {
		v := second.job(t, blockedID)
		return v.State == kalla.JobRunning && len(v.Attempts) == 2
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var res kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", blockedID), &res); err != nil || res.MatchedCount != 900 {
		t.Fatalf("complete payload %+v %v", res, err)
	}
	v := second.waitState(t, blockedID, kalla.JobCompleted)
	if v.Attempts[0].Outcome != "lost" || v.Attempts[1].Outcome != "completed" {
		t.Errorf("attempts: %+v, want lost then completed", v.Attempts)
	}
	if m := second.metric(t, "kallad_jobs_reclaimed_total"); m != "1" {
		t.Errorf("kallad_jobs_reclaimed_total = %s, want 1", m)
	}
	if m := second.metric(t, "kallad_queue_oldest_wait_seconds"); m != "0" {
		t.Errorf("kallad_queue_oldest_wait_seconds = %s with nothing waiting, want 0", m)
	}
	for _, id := range []string{blockedID, waitingID} {
		waitUntil(t, "complete callback recorded", func() bool { return second.job(t, id).Callback.Delivered })
	}
	if err := second.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	for _, id := range []string{blockedID, waitingID} {
		if n := len(rv.of("complete", id)); n != 1 {
			t.Errorf("job %s: %d complete callbacks, want exactly 1", id, n)
		}
		if n := len(rv.of("error", id)); n != 0 {
			t.Errorf("job %s: %d error callbacks", id, n)
		}
	}
}

// A complete callback whose receiver is down is delivered once the
// receiver is back, even across a crash of the scheduler in between.
func TestSchedulerCallbackReceiverDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: connection refused

	dataDir := t.TempDir()
	first := startScheduler(t, dataDir)
	job := exampleJob(t, "http://"+addr+"/kalla", t.TempDir())
	runID := job["run_id"].(string)
	if code, body := first.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	first.waitState(t, runID, kalla.JobCompleted)
	waitUntil(t, "a failed callback try", func() bool {
		cb := first.job(t, runID).Callback
		return cb != nil && cb.Tries >= 1 && cb.LastError != ""
	})
	first.kill()

	rv := startReceiverOn(t, addr)
	second := startScheduler(t, dataDir)
	var res kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &res); err != nil || res.MatchedCount != 5 {
		t.Fatalf("complete payload %+v %v", res, err)
	}
	waitUntil(t, "delivery recorded", func() bool { return second.job(t, runID).Callback.Delivered })
	if err := second.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if n := len(rv.of("complete", runID)); n != 1 {
		t.Errorf("%d complete callbacks, want 1", n)
	}
}

// SIGTERM with a job running past --shutdown-timeout puts it back in the
// queue; the next scheduler runs it again.
func TestSchedulerShutdownRequeues(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"KALLA_SHUTDOWN_TIMEOUT=100ms"}
	first := startScheduler(t, dataDir, env...)
	job := exampleJob(t, "", t.TempDir())
	job["match_sql"] = slowMatchSQL
	runID := job["run_id"].(string)
	if code, body := first.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "matching", func() bool { return first.job(t, runID).Stage == kalla.StageMatching })
	if err := first.terminate(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, first.logs())
	}

	second := startScheduler(t, dataDir, env...)
	v := second.job(t, runID)
	if len(v.Attempts) == 0 || v.Attempts[0].Outcome != "requeued" {
		t.Fatalf("attempts after shutdown: %+v", v.Attempts)
	}
	waitUntil(t, "the job running again", func() bool {
		v := second.job(t, runID)
		return v.State == kalla.JobRunning && len(v.Attempts) == 2
	})
	if code, _ := second.call(t, "DELETE", "/api/jobs/"+runID, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	second.waitState(t, runID, kalla.JobCancelled)
}

// The API's 4xx answers, from the real binary with a token.
func TestSchedulerRejects(t *testing.T) {
	t.Parallel()
	sched := startScheduler(t, t.TempDir(), "KALLA_API_TOKEN=t0ken")
	sched.Token = ""
	job := exampleJob(t, "", t.TempDir())
	if code, _ := sched.submit(t, job); code != 401 {
		t.Fatalf("without token: %d", code)
	}
	for _, path := range []string{"/health", "/ready", "/metrics", "/api/openapi.yaml"} {
		if code, _ := sched.call(t, "GET", path, nil); code != 200 {
			t.Errorf("GET %s without token: %d", path, code)
		}
	}
	sched.Token = "t0ken"
	with := func(change func(j map[string]any)) map[string]any {
		j := exampleJob(t, "", t.TempDir())
		change(j)
		return j
	}
	src := func(j map[string]any, i int) map[string]any { return j["sources"].([]any)[i].(map[string]any) }
	for _, tc := range []struct {
		name  string
		job   map[string]any
		field string
	}{
		{"bad UUID", with(func(j map[string]any) { j["run_id"] = "42" }), "run_id"},
		{"missing run_id", with(func(j map[string]any) { delete(j, "run_id") }), "run_id"},
		{"missing output_path", with(func(j map[string]any) { delete(j, "output_path") }), "output_path"},
		{"unknown scheme", with(func(j map[string]any) { src(j, 0)["uri"] = "gopher://x/y.csv" }), "sources[0].uri"},
		{"malformed filter", with(func(j map[string]any) {
			src(j, 1)["filters"] = []any{map[string]any{"column": "amount", "op": "in", "value": []any{}}}
		}), "sources[1].filters[0].value"},
		{"unknown primary-key alias", with(func(j map[string]any) { j["primary_keys"].(map[string]any)["ledger"] = []any{"id"} }), "primary_keys.ledger"},
	} {
		code, body := sched.submit(t, tc.job)
		var e kallahttp.ErrorBody
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, code, body, tc.field)
		}
	}
	req, _ := http.NewRequest("POST", sched.url+"/api/jobs", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("no content type: %d", resp.StatusCode)
	}
	big := exampleJob(t, "", t.TempDir())
	big["match_sql"] = strings.Repeat("-- padding\n", 200000)
	if code, _ := sched.submit(t, big); code != 413 {
		t.Errorf("2 MB job: %d, want 413", code)
	}
	if code, _ := sched.call(t, "GET", "/api/jobs/"+kalla.NewRunID(), nil); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
}

// A job whose runner dies on its last attempt fails, with one error
// callback, when the scheduler is back.
func TestSchedulerGivesUpAfterLastAttempt(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	tx := lockTable(t, db, "invoices")
	defer tx.Rollback(context.Background())
	rv := newCallbackReceiver(t)
	dataDir := t.TempDir()
	env := []string{"KALLA_MAX_ATTEMPTS=1", "KALLA_ACK_WAIT=1s"}
	first := startScheduler(t, dataDir, env...)
	job := postgresJob(db, rv.base(), t.TempDir())
	runID := job["run_id"].(string)
	if code, body := first.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	first.waitState(t, runID, kalla.JobRunning)
	first.kill()

	second := startScheduler(t, dataDir, env...)
	var rep kalla.ErrorReport
	if err := json.Unmarshal(rv.wait(t, "error", runID), &rep); err != nil || !strings.Contains(rep.Error, "gave up after 1 attempt") {
		t.Fatalf("error callback %+v %v", rep, err)
	}
	v := second.waitState(t, runID, kalla.JobFailed)
	if len(v.Attempts) != 1 || v.Attempts[0].Outcome != "lost" || v.Error == nil {
		t.Errorf("job view: %+v", v)
	}
	waitUntil(t, "error callback recorded", func() bool { return second.job(t, runID).Callback.Delivered })
	for name, want := range map[string]string{"kallad_jobs_failed_total": "1", "kalla_reaper_jobs_failed_total": "1", "kallad_active_jobs": "0"} {
		if m := second.metric(t, name); m != want {
			t.Errorf("%s = %s, want %s", name, m, want)
		}
	}
	if err := second.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if n, m := len(rv.of("error", runID)), len(rv.of("complete", runID)); n != 1 || m != 0 {
		t.Errorf("%d error and %d complete callbacks, want one error", n, m)
	}
}
