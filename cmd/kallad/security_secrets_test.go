package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// secretLeaks lists where any of secrets shows, in any of the forms a URI
// or JSON may carry it.
type secretLeaks struct {
	t       *testing.T
	secrets []string
}

func (s secretLeaks) check(where string, text []byte) {
	s.t.Helper()
	for _, sec := range s.secrets {
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			if bytes.Contains(text, []byte(form)) {
				s.t.Errorf("secret %q shows in %s:\n%s", sec, where, clip(text, form))
				break
			}
		}
	}
}

// checkDir greps every file under dir for the secrets, bytes as stored.
func (s secretLeaks) checkDir(dir string) {
	s.t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		s.check(path, b)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if n == 0 {
		s.t.Fatalf("no file under %s: nothing was checked", dir)
	}
}

// clip shows the text around the first occurrence of sec.
func clip(b []byte, sec string) string {
	i := bytes.Index(b, []byte(sec))
	if i < 0 {
		return ""
	}
	lo, hi := max(0, i-200), min(len(b), i+len(sec)+200)
	return strconv.Quote(string(b[lo:hi]))
}

// A job whose Postgres URI carries a password in three places fails to
// authenticate on an executor; none of the passwords shows in any API
// answer (the 202, the job, the list, a 400 on a malformed URI), callback,
// log line of the scheduler or the executor (at debug level), metric or
// file under --data-dir (job records, task payloads and results).
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	pg := kallatest.Postgres(t)
	db := seedPostgres(t)
	const (
		userinfoPW = "userinfo-pw-Q7x1"
		queryPW    = "query-pw-Z9k2"
		sslPW      = "sslpassword-W3m8"
	)
	leaks := secretLeaks{t: t, secrets: []string{userinfoPW, queryPW, sslPW, pg.Password}}
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	sched := startScheduler(t, data, "KALLA_LOG_LEVEL=debug", "KALLA_TASK_ACK_WAIT=3s")
	// An executor takes the job's tasks, so task payloads and results go
	// through the store too.
	executor := startExecutor(t, sched, filepath.Join(data, "staging"), "KALLA_LOG_LEVEL=debug")

	// A wrong password in the query (it wins over the userinfo's).
	uri := "postgres://" + url.UserPassword(pg.User, userinfoPW).String() + "@" + pg.Host + ":" + strconv.Itoa(pg.Port) + "/" + db.Database +
		"?table=" + db.Schema + ".invoices&sslmode=disable&password=" + queryPW + "&sslpassword=" + sslPW
	job := postgresJob(db, rv.base(), t.TempDir())
	job["sources"].([]any)[0].(map[string]any)["uri"] = uri
	// The right source reads with the right password: its own password
	// must not show either.
	runID := job["run_id"].(string)
	code, body := sched.submit(t, job)
	if code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	leaks.check("the 202", body)
	var report kalla.ErrorReport
	if err := json.Unmarshal(rv.wait(t, "error", runID), &report); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.Error, "password authentication failed") {
		t.Fatalf("the job failed for another reason than the wrong password: %q", report.Error)
	}
	sched.waitState(t, runID, kalla.JobFailed)

	bad := postgresJob(db, rv.base(), t.TempDir())
	bad["sources"].([]any)[0].(map[string]any)["uri"] = strings.Replace(uri, ":"+strconv.Itoa(pg.Port)+"/", ":port/", 1)
	code, body = sched.submit(t, bad)
	if code != 400 || !strings.Contains(string(body), `"field":"sources[0].uri"`) {
		t.Errorf("malformed URI: %d %s, want 400 on sources[0].uri", code, body)
	}
	leaks.check("the 400", body)

	_, body = sched.call(t, "GET", "/api/jobs/"+runID, nil)
	leaks.check("GET /api/jobs/{run_id}", body)
	// The job is shown, its URI masked where the passwords were.
	shown := sched.job(t, runID).Job
	if shown == nil || !strings.Contains(shown.Sources[0].URI, pg.User+":xxxxx@") ||
		!strings.Contains(shown.Sources[0].URI, "password=xxxxx&sslpassword=xxxxx") || !strings.Contains(shown.Sources[0].URI, "table="+db.Schema+".invoices") {
		t.Errorf("GET /api/jobs/{run_id} shows the job as %+v", shown)
	}
	_, body = sched.call(t, "GET", "/api/jobs", nil)
	if !strings.Contains(string(body), runID) {
		t.Errorf("GET /api/jobs does not list the job: %s", body)
	}
	leaks.check("GET /api/jobs", body)
	_, body = sched.call(t, "GET", "/metrics", nil)
	leaks.check("/metrics", body)
	for _, kind := range []string{"progress", "error", "complete"} {
		for _, cb := range rv.of(kind, runID) {
			leaks.check(kind+" callback", cb)
		}
	}
	if err := sched.terminate(); err != nil {
		t.Errorf("scheduler exit: %v", err)
	}
	leaks.check("the scheduler log", []byte(sched.logs()))
	if !strings.Contains(executor.logs(), "task failed") {
		t.Errorf("the job's tasks did not fail on the executor:\n%s", executor.logs())
	}
	leaks.check("the executor log", []byte(executor.logs()))
	leaks.checkDir(data)

	// The store was encrypted with a key generated on first start.
	info, err := os.Stat(filepath.Join(data, "store.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("store.key: %v, mode %v; want a 0600 file", err, info)
	}
	if n := strings.Count(sched.logs(), "generated a key that encrypts the job store"); n != 1 {
		t.Errorf("%d log lines about the generated key, want 1", n)
	}
}

// A store written with KALLA_STORE_KEY is read back after a restart with
// the same key; a wrong key, or none, stops the scheduler with a clear
// error before it touches the store.
func TestStoreKeyRestart(t *testing.T) {
	t.Parallel()
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("the-store-key-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sched := startScheduler(t, data, "KALLA_STORE_KEY_FILE="+keyFile)
	job := exampleJob(t, rv.base(), t.TempDir())
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	rv.wait(t, "complete", runID)
	sched.waitState(t, runID, kalla.JobCompleted)
	if err := sched.terminate(); err != nil {
		t.Fatalf("scheduler exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "store.key")); err == nil {
		t.Errorf("store.key generated although KALLA_STORE_KEY_FILE was set")
	}
	leaks := secretLeaks{t: t, secrets: []string{"the-store-key-1"}}
	leaks.check("the scheduler log", []byte(sched.logs()))

	again := startScheduler(t, data, "KALLA_STORE_KEY=the-store-key-1")
	if v := again.job(t, runID); v.State != kalla.JobCompleted || v.Result == nil || v.Result.MatchedCount != 5 {
		t.Errorf("after a restart with the same key: %+v", v)
	}
	if err := again.terminate(); err != nil {
		t.Fatalf("scheduler exit: %v", err)
	}

	for _, env := range [][]string{{"KALLA_STORE_KEY=another-key-2"}, nil} {
		stderr, code := schedulerFails(t, data, env...)
		if code == 0 || !strings.Contains(stderr, "kallad scheduler:") || !strings.Contains(stderr, "KALLA_STORE_KEY") {
			t.Errorf("env %q: exit %d, stderr %q; want a failure naming KALLA_STORE_KEY", env, code, stderr)
		}
		if strings.Contains(stderr, "another-key-2") || strings.Contains(stderr, "the-store-key-1") {
			t.Errorf("the key shows in %q", stderr)
		}
	}
	// The wrong key did not replace the store: the right key still reads it.
	third := startScheduler(t, data, "KALLA_STORE_KEY=the-store-key-1")
	if v := third.job(t, runID); v.State != kalla.JobCompleted {
		t.Errorf("after a refused wrong key: %+v", v)
	}
}

// schedulerFails runs a scheduler on dataDir that is expected to exit at
// start, and returns its stderr and exit code.
func schedulerFails(t *testing.T, dataDir string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(kalladBin, "scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1",
		"--data-dir", dataDir, "--staging-path", filepath.Join(dataDir, "staging"))
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var err error
	waitUntil(t, "the scheduler to refuse to start", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err == nil {
		return stderr.String(), 0
	}
	return stderr.String(), cmd.ProcessState.ExitCode()
}

// A job over named connections (conn://erp?table=...) gives exactly what
// the same job with the inline URI gives, in every process that opens a
// source: the scheduler validating it, an executor staging it, `kallad
// run`. A job cannot point a named connection elsewhere, and an unknown
// name is a 400 that shows nothing of the defined connections.
func TestNamedConnectionEqualsInline(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	pg := kallatest.Postgres(t)
	connEnv := "KALLA_CONN_ERP=" + db.URL
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, connEnv, "KALLA_PG_MIN_RANGE_PAGES=2")
	executor := startExecutor(t, sched, staging, connEnv, "KALLA_PG_MIN_RANGE_PAGES=2")

	inline := postgresJob(db, rv.base(), t.TempDir())
	job := postgresJob(db, rv.base(), t.TempDir())
	srcs := job["sources"].([]any)
	srcs[0].(map[string]any)["uri"] = "conn://erp?table=" + db.Schema + ".invoices"
	srcs[1].(map[string]any)["uri"] = "conn://ERP?table=" + db.Schema + ".payments"
	runID := job["run_id"].(string)
	inline["run_id"] = runID // compared whole, run id included
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	got := completeResult(t, rv, runID)
	want := runLocal(t, inline)
	if want.MatchedCount == 0 {
		t.Fatalf("the job matches nothing")
	}
	sameOutputs(t, got, want)
	if !strings.Contains(executor.logs(), "kind=stage") {
		t.Errorf("no stage task ran on the executor:\n%s", executor.logs())
	}
	got = runLocalEnv(t, job, connEnv)
	sameOutputs(t, got, want)

	leaks := secretLeaks{t: t, secrets: []string{pg.Password}}
	for _, tc := range []struct{ uri, says string }{
		{"conn://nope?table=" + db.Schema + ".invoices", `no connection named \"nope\"`},
		{"conn://erp?table=" + db.Schema + ".invoices&host=attacker.example", `\"host\" belongs to the connection`},
		{"conn://erp?table=" + db.Schema + ".invoices&user=postgres", `\"user\" belongs to the connection`},
	} {
		bad := postgresJob(db, rv.base(), t.TempDir())
		bad["sources"].([]any)[0].(map[string]any)["uri"] = tc.uri
		code, body := sched.submit(t, bad)
		if code != 400 || !strings.Contains(string(body), `"field":"sources[0].uri"`) || !strings.Contains(string(body), tc.says) {
			t.Errorf("%s: %d %s; want 400 on sources[0].uri saying %s", tc.uri, code, body, tc.says)
		}
		leaks.check("the 400", body)
		if strings.Contains(string(body), strconv.Itoa(pg.Port)) {
			t.Errorf("the 400 shows the named connection's address: %s", body)
		}
	}
}

// The scheduler's own Postgres credentials (PGPASSWORD, PGPASSFILE and
// ~/.pgpass, PGUSER, PGHOST) are never used for a job: a job URI without a
// password fails to authenticate, and nothing shows the password. The
// same server, as the operator's named connection, does log in with them,
// which proves they would have worked. A job may not name a socket folder.
func TestJobNeverUsesServerCredentials(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	pg := kallatest.Postgres(t)
	if pg.Password == "" {
		t.Skip("the test server has no password")
	}
	home := t.TempDir()
	pgpass := filepath.Join(home, ".pgpass")
	if err := os.WriteFile(pgpass, []byte("*:*:*:"+pg.User+":"+pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noPassword := "postgres://" + pg.User + "@" + pg.Host + ":" + strconv.Itoa(pg.Port) + "/" + db.Database + "?sslmode=disable"
	rv := newCallbackReceiver(t)
	sched := startScheduler(t, t.TempDir(), "HOME="+home, "PGPASSFILE="+pgpass, "PGPASSWORD="+pg.Password,
		"PGUSER="+pg.User, "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port), "KALLA_LOG_LEVEL=debug",
		"KALLA_CONN_OPS="+noPassword)
	leaks := secretLeaks{t: t, secrets: []string{pg.Password}}

	job := postgresJob(db, rv.base(), t.TempDir())
	srcs := job["sources"].([]any)
	srcs[0].(map[string]any)["uri"] = noPassword + "&table=" + db.Schema + ".invoices"
	srcs[1].(map[string]any)["uri"] = "conn://ops?table=" + db.Schema + ".payments"
	runID := job["run_id"].(string)
	code, body := sched.submit(t, job)
	if code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	raw := rv.wait(t, "error", runID)
	var report kalla.ErrorReport
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.Error, "password authentication failed") || !strings.Contains(report.Error, "left_src") {
		t.Errorf("error %q; want the left source's password authentication failure", report.Error)
	}
	leaks.check("the error callback", raw)

	// The operator's connection does use the server's credentials.
	ops := postgresJob(db, rv.base(), t.TempDir())
	for i, table := range []string{"invoices", "payments"} {
		ops["sources"].([]any)[i].(map[string]any)["uri"] = "conn://ops?table=" + db.Schema + "." + table
	}
	if code, body := sched.submit(t, ops); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	if res := completeResult(t, rv, ops["run_id"].(string)); res.MatchedCount == 0 {
		t.Errorf("the named connection's job matched nothing: %+v", res)
	}

	for _, uri := range []string{
		"postgres://" + pg.User + "@127.0.0.1/" + db.Database + "?host=/tmp&table=" + db.Schema + ".invoices",
		"postgres://" + pg.User + "@%2Ftmp/" + db.Database + "?table=" + db.Schema + ".invoices",
	} {
		bad := postgresJob(db, rv.base(), t.TempDir())
		bad["sources"].([]any)[0].(map[string]any)["uri"] = uri
		code, body := sched.submit(t, bad)
		if code != 400 || !strings.Contains(string(body), `"field":"sources[0].uri"`) || !strings.Contains(string(body), `host \"/tmp\"`) {
			t.Errorf("%s: %d %s; want 400 on sources[0].uri naming the host", uri, code, body)
		}
	}
	_, body = sched.call(t, "GET", "/api/jobs/"+runID, nil)
	leaks.check("GET /api/jobs/{run_id}", body)
	if err := sched.terminate(); err != nil {
		t.Errorf("scheduler exit: %v", err)
	}
	leaks.check("the scheduler log", []byte(sched.logs()))
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads.
type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// NATS URL credentials (a token, a user's password, in a list of servers)
// never show in the scheduler's log or its failure line.
func TestNATSCredentialsMasked(t *testing.T) {
	t.Parallel()
	const token = "nats-token-S3cr3t"
	owner := startScheduler(t, t.TempDir(), "KALLA_CLUSTER_TOKEN="+token)
	withToken := strings.Replace(owner.natsURL(t), "nats://", "nats://"+token+"@", 1)
	client := startScheduler(t, t.TempDir(), "NATS_URL="+withToken)
	if !strings.Contains(client.logs(), `nats_url=nats://xxxxx@`) {
		t.Errorf("the ready line does not show the masked NATS URL:\n%s", client.logs())
	}
	leaks := secretLeaks{t: t, secrets: []string{token, "nats-pw-S3cr3t", "tok-S3cr3t2"}}
	leaks.check("the scheduler log", []byte(client.logs()))

	// An executor joining with the token in its --nats-url.
	var execLog bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(kalladBin, "executor", "--nats-url", withToken, "--bind-port", "-1",
		"--staging-path", t.TempDir(), "--partitions", "1", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = &lockedBuffer{mu: &mu, b: &execLog}, &lockedBuffer{mu: &mu, b: &execLog}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := func() string { mu.Lock(); defer mu.Unlock(); return execLog.String() }
	waitUntil(t, "the executor to be ready", func() bool { return strings.Contains(logs(), "executor ready") })
	if !strings.Contains(logs(), "scheduler=nats://xxxxx@") {
		t.Errorf("the executor's ready line does not show the masked URL:\n%s", logs())
	}
	leaks.check("the executor log", []byte(logs()))

	stderr, code := schedulerFails(t, t.TempDir(), "NATS_URL=nats://u:nats-pw-S3cr3t@127.0.0.1:1,nats://tok-S3cr3t2@127.0.0.1:2")
	if code == 0 || !strings.Contains(stderr, "nats://u:xxxxx@127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q; want a failure naming the masked URL", code, stderr)
	}
	leaks.check("the failure line", []byte(stderr))
}
