package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// seedPatterns creates the pattern data in a Postgres schema of its own.
func seedPatterns(t *testing.T) *kallatest.DB {
	t.Helper()
	db := kallatest.Postgres(t).NewSchema(t)
	for _, q := range ducktest.PatternData {
		db.Exec(t, q)
	}
	return db
}

func patternJob(matchSQL, left, right, callbackURL string, t *testing.T) map[string]any {
	return map[string]any{
		"run_id":       kalla.NewRunID(),
		"callback_url": callbackURL,
		"match_sql":    matchSQL,
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": left},
			map[string]any{"alias": "right_src", "uri": right,
				"filters": []any{map[string]any{"column": "amount", "op": "gt", "value": 0}}},
		},
		"output_path":  t.TempDir(),
		"primary_keys": map[string]any{"left_src": []any{"invoice_id"}, "right_src": []any{"payment_id"}},
	}
}

// completeResult waits for runID's complete callback.
func completeResult(t *testing.T, rv *callbackReceiver, runID string) kalla.Result {
	t.Helper()
	var res kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// stagingEmpty reports whether no job has files under the staging folder.
func stagingEmpty(t *testing.T, staging string) bool {
	entries, err := os.ReadDir(filepath.Join(staging, "cluster"))
	return (err != nil && os.IsNotExist(err)) || (err == nil && len(entries) == 0)
}

// Every pattern, on Postgres and on Parquet files, run by a scheduler with
// two executor processes gives exactly what `kallad run` gives: the same
// counts, and the same rows and column types in every file. Each Postgres
// table is staged by two stage tasks (the scheduler's partition count),
// ranges of one snapshot, and so is each CSV file (byte ranges). Staging
// files are gone after each job.
func TestClusterPatternsEqualLocal(t *testing.T) {
	t.Parallel()
	db := seedPatterns(t)
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	invCSV, payCSV := ducktest.WritePatternFiles(t, t.TempDir(), "csv")
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	// The pattern tables have a dozen pages and their CSV files some 50 kB:
	// ranges of 2 pages and splits of 1 kB divide them.
	sched := startScheduler(t, data, "KALLA_TASK_ACK_WAIT=3s", "KALLA_PG_MIN_RANGE_PAGES=2")
	startExecutor(t, sched, staging, "KALLA_CSV_MIN_SPLIT_BYTES=1024")
	startExecutor(t, sched, staging, "KALLA_CSV_MIN_SPLIT_BYTES=1024")
	if n := len(sched.executors(t)); n != 2 {
		t.Fatalf("GET /api/cluster lists %d executors, want 2", n)
	}
	waitUntil(t, "kallad_executors_connected 2", func() bool { return sched.metric(t, "kallad_executors_connected") == "2" })

	sources := map[string][2]string{
		"postgres": {db.TableURI("invoices"), db.TableURI("payments")},
		"parquet":  {inv, pay},
		"csv":      {invCSV, payCSV},
	}
	for kind, src := range sources {
		for _, pat := range clusterPatterns {
			t.Run(kind+"/"+pat.name, func(t *testing.T) {
				job := patternJob(pat.sql, src[0], src[1], rv.base(), t)
				runID := job["run_id"].(string)
				if code, body := sched.submit(t, job); code != 202 {
					t.Fatalf("submit: %d %s", code, body)
				}
				got := completeResult(t, rv, runID)
				want := runLocal(t, job)
				if want.MatchedCount == 0 {
					t.Errorf("the pattern matches nothing")
				}
				sameOutputs(t, got, want)
				planned := regexp.MustCompile(`msg="job planned".* run_id=` + runID + `.* mode=(\w+)`).FindStringSubmatch(sched.logs())
				if planned == nil || planned[1] != pat.mode {
					t.Errorf("job planned as %v, want %s", planned, pat.mode)
				}
				if kind != "parquet" && pat.mode != "single" {
					checkSplit(t, sched.logs(), runID, map[string]int{"left_src": 2, "right_src": 2})
				}
				if !stagingEmpty(t, staging) {
					t.Errorf("staging files left after the job")
				}
			})
		}
	}
	for _, name := range []string{"kallad_rows_shuffled_total", "kallad_shuffle_bytes_total", "kallad_partial_result_bytes_total"} {
		if v := sched.metric(t, name); v == "0" || v == "" {
			t.Errorf("%s = %q, want the volume the jobs moved", name, v)
		}
	}
}

// checkSplit checks from the scheduler's log that runID's sources were
// split into the given numbers of stage tasks.
func checkSplit(t *testing.T, logs, runID string, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	re := regexp.MustCompile(`msg="source split".* run_id=` + runID + `.* alias=(\w+) splits=(\d+)`)
	for _, m := range re.FindAllStringSubmatch(logs, -1) {
		var n int
		fmt.Sscan(m[2], &n)
		got[m[1]] = n
	}
	if !maps.Equal(got, want) {
		t.Errorf("sources split into %v stage tasks, want %v", got, want)
	}
}

// slowPatternSQL is the 1:1 pattern with a subquery that reads no source
// and takes seconds, so a match task is still running when the test acts.
const slowPatternSQL = `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
	FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)
	WHERE (SELECT count(*) FROM (SELECT unnest(generate_series(1, 20000)) AS range) a, (SELECT unnest(generate_series(1, 20000)) AS range) b WHERE a.range + b.range < 0) = 0`

// An executor killed with SIGKILL in the middle of a match task loses
// nothing: an executor that joined while the job ran gets the task again
// after the ack wait, and the job completes with the local results.
func TestClusterExecutorKilledMidTask(t *testing.T) {
	t.Parallel()
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_TASK_ACK_WAIT=2s")
	first := startExecutor(t, sched, staging)

	job := patternJob(slowPatternSQL, inv, pay, rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "a match task to start", func() bool {
		return strings.Contains(first.logs(), `msg="task started"`) && strings.Contains(first.logs(), "kind=match")
	})
	startExecutor(t, sched, staging)
	first.kill()

	got := completeResult(t, rv, runID)
	sameOutputs(t, got, runLocal(t, job))
	if v := sched.metric(t, "kallad_tasks_redelivered_total"); v == "0" {
		t.Errorf("kallad_tasks_redelivered_total = %s, want a redelivery", v)
	}
	if !stagingEmpty(t, staging) {
		t.Errorf("staging files left after the job")
	}
	waitUntil(t, "the killed executor to drop out", func() bool { return len(sched.executors(t)) == 1 })
}

// An executor killed with SIGKILL while it stages one range of a Postgres
// table loses nothing and duplicates nothing: the range's task is
// redelivered to the other executor, which imports the snapshot the
// scheduler still holds, replaces whatever the killed attempt wrote, and
// the job completes with the local results.
func TestClusterExecutorKilledMidStage(t *testing.T) {
	t.Parallel()
	db := seedPatterns(t)
	// Every invoice row costs 3 ms to read, so each of the table's two
	// ranges takes seconds to stage. (The test role is no superuser: the
	// policy applies to it.)
	db.Exec(t, `ALTER TABLE invoices ENABLE ROW LEVEL SECURITY`)
	db.Exec(t, `ALTER TABLE invoices FORCE ROW LEVEL SECURITY`)
	db.Exec(t, `CREATE POLICY slow ON invoices USING (pg_sleep(0.003)::text = '')`)
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_TASK_ACK_WAIT=2s", "KALLA_PG_MIN_RANGE_PAGES=2")
	// Two executors of one task each: the tables are split in two ranges.
	execs := []*execProc{startExecutor(t, sched, staging), startExecutor(t, sched, staging)}

	job := patternJob(clusterPatterns[0].sql, db.TableURI("invoices"), db.TableURI("payments"), rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	stageStarted := regexp.MustCompile(`msg="task started".* task=stage-0-\d`)
	var victim *execProc
	waitUntil(t, "a stage task of the invoices to start", func() bool {
		for _, e := range execs {
			if stageStarted.MatchString(e.logs()) {
				victim = e
				return true
			}
		}
		return false
	})
	victim.kill()

	got := completeResult(t, rv, runID)
	sameOutputs(t, got, runLocal(t, job))
	checkSplit(t, sched.logs(), runID, map[string]int{"left_src": 2, "right_src": 2})
	if v := sched.metric(t, "kallad_tasks_redelivered_total"); v == "0" {
		t.Errorf("kallad_tasks_redelivered_total = %s, want a redelivery", v)
	}
	if !stagingEmpty(t, staging) {
		t.Errorf("staging files left after the job")
	}
}

// A task that fails on every attempt fails the job with one error
// callback that names the cause, and its staging files are removed.
func TestClusterTaskFailsEveryAttempt(t *testing.T) {
	t.Parallel()
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_MAX_ATTEMPTS=2")
	startExecutor(t, sched, staging)

	// The binder accepts the cast; converting 'c7' fails at run time.
	job := patternJob(`SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE CAST(i.customer AS INTEGER) > 0`, inv, pay, rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	report := failedOnce(t, sched, rv, runID, staging)
	if report.Stage != kalla.StageMatching || !strings.Contains(report.Error, "match-") || !strings.Contains(report.Error, "Conversion") {
		t.Errorf("error callback %+v", report)
	}
}

// A split stage task that fails on every attempt (the last range of the
// invoices holds a row whose read raises an error) fails the job with one
// error callback that names the task and the cause, while the other range
// stages fine; the staging files are removed.
func TestClusterSplitStageFailsEveryAttempt(t *testing.T) {
	t.Parallel()
	db := seedPatterns(t)
	db.Exec(t, `CREATE FUNCTION kalla_refuse(id int8) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN IF id = 2000 THEN RAISE EXCEPTION 'invoice % is unreadable', id; END IF; RETURN true; END $$`)
	db.Exec(t, `ALTER TABLE invoices ENABLE ROW LEVEL SECURITY`)
	db.Exec(t, `ALTER TABLE invoices FORCE ROW LEVEL SECURITY`)
	db.Exec(t, `CREATE POLICY refuse ON invoices USING (kalla_refuse(invoice_id))`)
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_MAX_ATTEMPTS=2", "KALLA_PG_MIN_RANGE_PAGES=2")
	startExecutor(t, sched, staging)
	startExecutor(t, sched, staging)

	job := patternJob(clusterPatterns[0].sql, db.TableURI("invoices"), db.TableURI("payments"), rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	report := failedOnce(t, sched, rv, runID, staging)
	if report.Stage != kalla.StageStaging || !strings.Contains(report.Error, "stage-0-") || !strings.Contains(report.Error, "invoice 2000 is unreadable") {
		t.Errorf("error callback %+v", report)
	}
	checkSplit(t, sched.logs(), runID, map[string]int{"left_src": 2, "right_src": 2})
}

// A scheduler killed with SIGKILL while executors run its job's tasks, and
// restarted on the same data folder and cluster port, does not lose the
// job: the executors reconnect, the job's redelivered task starts a fresh
// attempt (the old attempt's tasks are dropped with its folder), and the
// job completes once, with the local results.
func TestClusterSchedulerKilledMidJob(t *testing.T) {
	t.Parallel()
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	env := []string{"KALLA_ACK_WAIT=3s", "KALLA_TASK_ACK_WAIT=3s"}
	sched := startSchedulerArgs(t, data, []string{"--grpc-port", port}, env...)
	execs := []*execProc{startExecutor(t, sched, staging), startExecutor(t, sched, staging)}

	job := patternJob(slowPatternSQL, inv, pay, rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "a match task to start", func() bool {
		for _, e := range execs {
			if strings.Contains(e.logs(), `msg="task started"`) && strings.Contains(e.logs(), "kind=match") {
				return true
			}
		}
		return false
	})
	sched.kill()
	restarted := startSchedulerArgs(t, data, []string{"--grpc-port", port}, env...)

	got := completeResult(t, rv, runID)
	sameOutputs(t, got, runLocal(t, job))
	waitUntil(t, "the executors to rejoin", func() bool { return len(restarted.executors(t)) == 2 })
	waitUntil(t, "the complete callback to be recorded", func() bool { return restarted.job(t, runID).Callback.Delivered })
	if n := len(rv.of("complete", runID)); n != 1 {
		t.Errorf("%d complete callbacks, want 1", n)
	}
	if n := len(rv.of("error", runID)); n != 0 {
		t.Errorf("%d error callbacks, want none", n)
	}
	if v := restarted.job(t, runID); v.State != kalla.JobCompleted || len(v.Attempts) < 2 {
		t.Errorf("job %s after %d attempts, want completed after a second attempt", v.State, len(v.Attempts))
	}
	if !stagingEmpty(t, staging) {
		t.Errorf("staging files left after the job")
	}
}
