package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// outboundSecret is the password of the database URIs of these tests: it
// must appear in no answer and no log line.
const outboundSecret = "0utb0und-S3cret"

// refused submits job and checks the 400 names field and says why, with
// no secret in the answer.
func refused(t *testing.T, sched *schedProc, name string, job map[string]any, field, says string) {
	t.Helper()
	code, body := sched.submit(t, job)
	var e kallahttp.ErrorBody
	if code != 400 || json.Unmarshal(body, &e) != nil || e.Field != field || !strings.Contains(e.Error, says) {
		t.Errorf("%s: %d %s, want 400 naming %s and saying %q", name, code, body, field, says)
	}
	if strings.Contains(string(body), outboundSecret) {
		t.Errorf("%s: the answer shows the password: %s", name, body)
	}
}

func withSource(job map[string]any, i int, uri string) map[string]any {
	job["sources"].([]any)[i].(map[string]any)["uri"] = uri
	return job
}

// With the default allow-lists, local use works (the other tests), and
// every spelling of the cloud metadata address is refused at submission,
// for callbacks and database hosts.
func TestOutboundDefaultsRefuseMetadata(t *testing.T) {
	t.Parallel()
	sched := startScheduler(t, t.TempDir())
	pg := func(host string) string {
		return "postgres://kalla:" + outboundSecret + "@" + host + ":5432/erp?table=invoices&sslpassword=" + outboundSecret
	}
	for _, host := range []string{"169.254.169.254", "[::ffff:169.254.169.254]", "[fe80::1]", "[fd00:ec2::254]", "169.254.170.2"} {
		refused(t, sched, "callback "+host, exampleJob(t, "http://"+host+"/latest/meta-data", t.TempDir()), "callback_url", "link-local")
		refused(t, sched, "database "+host, withSource(exampleJob(t, "", t.TempDir()), 0, pg(host)), "sources[0].uri", "link-local")
	}
	if strings.Contains(sched.logs(), outboundSecret) {
		t.Errorf("the log shows the password:\n%s", sched.logs())
	}
}

// Tightened allow-lists refuse, at submission and naming the field, every
// callback host, database host, folder and bucket outside them, including a
// symlink inside an allowed folder pointing outside it; what they allow
// runs. `kallad run` applies the same lists.
func TestOutboundAllowListsTightened(t *testing.T) {
	t.Parallel()
	allowed := t.TempDir()
	outside := t.TempDir()
	for _, name := range []string{"invoices.csv", "payments.csv"} {
		b, err := os.ReadFile(filepath.Join(examplesDir(t), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(allowed, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(allowed, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(examplesDir(t), "invoices.csv"), filepath.Join(allowed, "links", "escape.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--allow-paths", allowed},
		"KALLA_ALLOW_CALLBACK_HOSTS=10.0.0.0/8, hooks.example",
		"KALLA_ALLOW_DB_HOSTS=db.internal",
		"KALLA_ALLOW_S3_BUCKETS=results, kalla-*")
	rv := newCallbackReceiver(t)
	job := func() map[string]any {
		j := exampleJob(t, "", filepath.Join(allowed, "out"))
		withSource(j, 0, filepath.Join(allowed, "invoices.csv"))
		return withSource(j, 1, filepath.Join(allowed, "payments.csv"))
	}
	pg := "postgres://kalla:" + outboundSecret + "@127.0.0.1:5432/erp?table=invoices"
	for _, tc := range []struct {
		name, field, says string
		job               map[string]any
	}{
		{"callback on loopback", "callback_url", "KALLA_ALLOW_CALLBACK_HOSTS", func() map[string]any { j := job(); j["callback_url"] = rv.base(); return j }()},
		{"file outside", "sources[0].uri", "KALLA_ALLOW_PATHS", withSource(job(), 0, filepath.Join(examplesDir(t), "invoices.csv"))},
		{"file URI outside", "sources[1].uri", "KALLA_ALLOW_PATHS", withSource(job(), 1, "file://"+filepath.Join(examplesDir(t), "payments.csv"))},
		{"symlink out", "sources[0].uri", "KALLA_ALLOW_PATHS", withSource(job(), 0, filepath.Join(allowed, "links", "escape.csv"))},
		{"glob over a symlink out", "sources[0].uri", "KALLA_ALLOW_PATHS", withSource(job(), 0, filepath.Join(allowed, "links", "*.csv"))},
		{"dot-dot", "sources[0].uri", "KALLA_ALLOW_PATHS", withSource(job(), 0, allowed+"/../"+filepath.Base(outside)+"/x.csv")},
		{"output outside", "output_path", "KALLA_ALLOW_PATHS", func() map[string]any { j := job(); j["output_path"] = outside; return j }()},
		{"output through a symlink", "output_path", "KALLA_ALLOW_PATHS", func() map[string]any {
			j := job()
			j["output_path"] = filepath.Join(allowed, "elsewhere", "results")
			return j
		}()},
		{"database host", "sources[0].uri", "KALLA_ALLOW_DB_HOSTS", withSource(job(), 0, pg)},
		{"bucket", "sources[1].uri", "KALLA_ALLOW_S3_BUCKETS", withSource(job(), 1, "s3://other-bucket/payments.csv")},
		{"output bucket", "output_path", "KALLA_ALLOW_S3_BUCKETS", func() map[string]any { j := job(); j["output_path"] = "s3://kalla/results"; return j }()},
	} {
		refused(t, sched, tc.name, tc.job, tc.field, tc.says)
	}
	if _, err := os.Stat(filepath.Join(outside, "results")); err == nil {
		t.Error("a refused output was created through the symlink")
	}

	ok := job()
	if code, body := sched.submit(t, ok); code != 202 {
		t.Fatalf("allowed job: %d %s", code, body)
	}
	sched.waitState(t, ok["run_id"].(string), kalla.JobCompleted)
	if strings.Contains(sched.logs(), outboundSecret) {
		t.Errorf("the log shows the password:\n%s", sched.logs())
	}

	// kallad run: the same lists, from flags.
	jobFile := filepath.Join(t.TempDir(), "job.json")
	b, _ := json.Marshal(withSource(job(), 0, filepath.Join(allowed, "links", "escape.csv")))
	if err := os.WriteFile(jobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := kallad(t, t.TempDir(), "run", "--allow-paths", allowed, jobFile)
	if code != 2 || !strings.Contains(stderr, "invalid job: sources[0].uri: path") || !strings.Contains(stderr, "outside the folders of KALLA_ALLOW_PATHS") {
		t.Errorf("kallad run: exit %d, %s", code, stderr)
	}
	_, stderr, code = kallad(t, t.TempDir(), "run", "--allow-db-hosts", "10.0.0.0/33", jobFile)
	if code == 0 || !strings.Contains(stderr, "KALLA_ALLOW_DB_HOSTS") {
		t.Errorf("malformed list: exit %d, %s", code, stderr)
	}
}

// A callback receiver answering with a redirect is not followed: the
// redirect's target is never called, the delivery ends (not retried), and
// the Location, which may hold a token, is not logged.
func TestCallbackRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var stolen atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer target.Close()
	const locationToken = "L0cation-T0ken"
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/steal?token="+locationToken, http.StatusTemporaryRedirect)
	}))
	defer receiver.Close()

	sched := startScheduler(t, t.TempDir())
	job := exampleJob(t, receiver.URL+"/kalla", t.TempDir())
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	sched.waitState(t, runID, kalla.JobCompleted)
	var v kallahttp.JobView
	waitUntil(t, "the complete callback to be settled", func() bool {
		v = sched.job(t, runID)
		return v.Callback != nil && v.Callback.Delivered
	})
	if v.Callback.Status != http.StatusTemporaryRedirect || v.Callback.Tries != 1 {
		t.Errorf("callback record %+v, want one try ending on 307", v.Callback)
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target was called %d times", n)
	}
	logs := sched.logs()
	if !strings.Contains(logs, "redirect, which is not followed") || strings.Contains(logs, locationToken) {
		t.Errorf("log: want the redirect reported without its Location:\n%s", logs)
	}
}

// DNS rebinding: a callback host and a database host that resolve to a
// loopback address when the jobs are submitted and to the metadata
// address when they run are refused then: the complete callback is not
// delivered (and not retried), and the database job fails naming the
// address, without the password.
func TestOutboundRebindingRefusedWhenConnecting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := seedPostgres(t)
	dns := kallatest.StartDNS(t)
	dns.Set("cb.test", "127.0.0.1")
	dns.Set("pg.test", "127.0.0.1")
	sched := startScheduler(t, t.TempDir(), "MAX_CONCURRENT_JOBS=1", "KALLA_TEST_DNS_SERVER="+dns.Addr)
	rv := newCallbackReceiver(t)
	rv.srv.Config.SetKeepAlivesEnabled(false) // every callback dials anew
	cb, err := url.Parse(rv.base())
	if err != nil {
		t.Fatal(err)
	}
	cb.Host = "cb.test:" + cb.Port()

	// The first job holds the only slot, blocked on a table lock; the
	// second waits in the queue.
	tx := lockTable(t, db, "invoices")
	blocked := postgresJob(db, cb.String(), t.TempDir())
	blockedID := blocked["run_id"].(string)
	if code, body := sched.submit(t, blocked); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	sched.waitState(t, blockedID, kalla.JobRunning)
	waitLockWaiter(t, db, "invoices")
	rebound := postgresJob(db, rv.base(), t.TempDir())
	reboundID := rebound["run_id"].(string)
	for i := range 2 {
		src := rebound["sources"].([]any)[i].(map[string]any)
		u, err := url.Parse(src["uri"].(string))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), outboundSecret)
		u.Host = "pg.test:" + u.Port()
		src["uri"] = u.String()
	}
	if code, body := sched.submit(t, rebound); code != 202 {
		t.Fatalf("submit while pg.test is local: %d %s", code, body)
	}

	dns.Set("cb.test", "169.254.169.254")
	dns.Set("pg.test", "169.254.169.254")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	sched.waitState(t, blockedID, kalla.JobCompleted)
	var v kallahttp.JobView
	waitUntil(t, "the complete callback to be given up", func() bool {
		v = sched.job(t, blockedID)
		return v.Callback != nil && v.Callback.Delivered
	})
	if !strings.Contains(v.Callback.LastError, "169.254.169.254") || v.Callback.Status != 0 {
		t.Errorf("callback record %+v, want a refusal of 169.254.169.254", v.Callback)
	}
	if n := len(rv.of("complete", blockedID)); n != 0 {
		t.Errorf("%d complete callbacks delivered to the rebound host", n)
	}

	failed := sched.waitState(t, reboundID, kalla.JobFailed)
	report := rv.wait(t, "error", reboundID)
	if failed.Error == nil || !strings.Contains(failed.Error.Error, "169.254.169.254") || !strings.Contains(failed.Error.Error, "pg.test") {
		t.Errorf("rebound job's error: %+v", failed.Error)
	}
	if strings.Contains(string(report), outboundSecret) || strings.Contains(sched.logs(), outboundSecret) {
		t.Errorf("the password shows in the error callback or the log:\n%s\n%s", report, sched.logs())
	}
}

// An executor enforces its own allow-lists: a job the scheduler accepts
// (its lists are the defaults) over files outside the executor's
// KALLA_ALLOW_PATHS fails in the executor's task, naming the setting.
func TestOutboundExecutorChecksItsOwnLists(t *testing.T) {
	t.Parallel()
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_MAX_ATTEMPTS=1")
	startExecutor(t, sched, staging, "KALLA_ALLOW_PATHS="+t.TempDir())

	job := patternJob(clusterPatterns[0].sql, inv, pay, rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	report := failedOnce(t, sched, rv, runID, staging)
	if !strings.Contains(report.Error, "KALLA_ALLOW_PATHS") || !strings.Contains(report.Error, filepath.Base(inv)) {
		t.Errorf("error callback %+v, want the executor's refusal of %s", report, inv)
	}
}
