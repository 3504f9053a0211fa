package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// The attacks on the cluster port and the job API of issue 10: a client
// that is not on the scheduler's host, without credentials or with wrong
// ones, is refused by both; with the credentials, an executor elsewhere
// joins and runs tasks; no secret shows in any log, answer or callback.

// randomSecret returns a fresh hex secret.
func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// noSecret fails t if text holds one of secrets.
func noSecret(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret (%.4s...)", where, s)
		}
	}
}

// port returns the port of a URL such as http://[::]:8080 or nats://0.0.0.0:4222.
func port(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		t.Fatalf("no port in %q (%v)", rawURL, err)
	}
	return u.Port()
}

// waitLog waits until a process's log matches re (case-insensitive).
func waitLog(t *testing.T, what string, logs func() string, re string) {
	t.Helper()
	rx := regexp.MustCompile("(?i)" + re)
	waitUntil(t, what, func() bool { return rx.MatchString(logs()) })
}

// runExampleJob submits the bundled example through sched and waits for
// its result; the example reconciles 5 pairs.
func runExampleJob(t *testing.T, sched *schedProc, rv *callbackReceiver) string {
	t.Helper()
	job := exampleJob(t, rv.base(), t.TempDir())
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	if res := completeResult(t, rv, runID); res.MatchedCount != 5 {
		t.Errorf("matched %d, want 5", res.MatchedCount)
	}
	return runID
}

// ranTask reports whether an executor's log shows a task of runID done.
func ranTask(p *execProc, runID string) bool {
	return regexp.MustCompile(`msg="task done".*run_id=` + runID).MatchString(p.logs())
}

// protectedLine matches the one line a scheduler logs in protected mode.
var protectedLine = regexp.MustCompile(`(?m)^.*accept clients on loopback only.*$`)

// From a network namespace (another host, as far as the scheduler can
// tell), a scheduler without credentials listening on every address
// answers the job API 403 and refuses executors, while loopback clients
// use both; with a cluster token and an API token, an executor in the
// namespace joins with the token and runs the tasks of a job, a wrong token
// is refused, and neither token shows anywhere.
func TestProtectedModeFromAnotherHost(t *testing.T) {
	t.Parallel()
	ns := newNetns(t)
	client := ns.httpClient()
	get := func(t *testing.T, rawURL, token string) (int, kallahttp.ErrorBody) {
		t.Helper()
		req, err := http.NewRequest("GET", rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s from the namespace: %v", rawURL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e kallahttp.ErrorBody
		_ = json.Unmarshal(body, &e)
		return resp.StatusCode, e
	}

	t.Run("without credentials", func(t *testing.T) {
		data := t.TempDir()
		staging := filepath.Join(data, "staging")
		sched := startSchedulerArgs(t, data, []string{"--bind-host", "0.0.0.0"})
		api := "http://" + net.JoinHostPort(ns.hostIP, port(t, sched.url))
		natsURL := "nats://" + net.JoinHostPort(ns.hostIP, port(t, sched.natsURL(t)))
		lines := protectedLine.FindAllString(sched.logs(), -1)
		if len(lines) != 1 || !strings.Contains(lines[0], "the cluster port and /api/*") || !strings.Contains(lines[0], "KALLA_API_TOKEN") || !strings.Contains(lines[0], "level=WARN") {
			t.Errorf("protected-mode lines: %q, want one warning naming the cluster port, /api/* and KALLA_API_TOKEN", lines)
		}

		for _, path := range []string{"/api/jobs", "/api/cluster"} {
			if code, e := get(t, api+path, ""); code != 403 || e.Code != "forbidden" || !strings.Contains(e.Error, "KALLA_API_TOKEN") {
				t.Errorf("GET %s from %s: %d %+v, want 403 forbidden naming KALLA_API_TOKEN", path, ns.nsIP, code, e)
			}
		}
		// Probes and scrapers (kubelet, Prometheus) come from other hosts.
		for _, path := range []string{"/health", "/ready", "/metrics"} {
			if code, _ := get(t, api+path, ""); code != 200 {
				t.Errorf("GET %s from %s: %d, want 200", path, ns.nsIP, code)
			}
		}

		outsider := launchExecutor(t, ns.exec(), []string{"--nats-url", natsURL, "--staging-path", staging})
		waitLog(t, "the executor in the namespace to be refused", outsider.logs, "authorization violation")
		waitLog(t, "the scheduler to log the refusal", sched.logs, `protected mode: refused a cluster client.* remote=`+regexp.QuoteMeta(ns.nsIP)+`:`)
		if n := len(sched.executors(t)); n != 0 {
			t.Fatalf("%d executors joined from outside", n)
		}

		// On loopback, without credentials, everything works.
		local := startExecutor(t, sched, staging)
		runID := runExampleJob(t, sched, newCallbackReceiver(t))
		if !ranTask(local, runID) {
			t.Errorf("the loopback executor ran no task of the job")
		}
		if n := len(sched.executors(t)); n != 1 {
			t.Errorf("%d executors listed, want the loopback one", n)
		}
	})

	t.Run("with tokens", func(t *testing.T) {
		clusterToken, apiToken := randomSecret(t), randomSecret(t)
		tokenFile := filepath.Join(t.TempDir(), "cluster-token")
		if err := os.WriteFile(tokenFile, []byte(clusterToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		data := t.TempDir()
		staging := filepath.Join(data, "staging")
		sched := startSchedulerArgs(t, data, []string{"--bind-host", "0.0.0.0"}, "KALLA_CLUSTER_TOKEN="+clusterToken, "KALLA_API_TOKEN="+apiToken)
		api := "http://" + net.JoinHostPort(ns.hostIP, port(t, sched.url))
		natsURL := "nats://" + net.JoinHostPort(ns.hostIP, port(t, sched.natsURL(t)))
		if lines := protectedLine.FindAllString(sched.logs(), -1); len(lines) != 0 {
			t.Errorf("protected mode announced with both tokens set: %q", lines)
		}

		if code, e := get(t, api+"/api/jobs", ""); code != 401 || e.Code != "unauthorized" {
			t.Errorf("GET /api/jobs from %s without the token: %d %+v, want 401", ns.nsIP, code, e)
		}
		if code, e := get(t, api+"/api/jobs", apiToken); code != 200 {
			t.Errorf("GET /api/jobs from %s with the token: %d %+v", ns.nsIP, code, e)
		}

		forger := launchExecutor(t, ns.exec(), []string{"--nats-url", natsURL, "--staging-path", staging}, "KALLA_CLUSTER_TOKEN=not-"+clusterToken)
		anonymous := launchExecutor(t, ns.exec(), []string{"--nats-url", natsURL, "--staging-path", staging})
		waitLog(t, "the executor with a wrong token to be refused", forger.logs, "authorization violation")
		waitLog(t, "the executor without a token to be refused", anonymous.logs, "authorization violation")

		// The token from a file; the executor is known by its address in
		// the namespace.
		member := launchExecutor(t, ns.exec(), []string{"--nats-url", natsURL, "--staging-path", staging,
			"--cluster-token-file", tokenFile, "--external-host", ns.nsIP})
		waitUntil(t, "the executor in the namespace to join", func() bool { return len(sched.executors(t)) == 1 })
		if got := sched.executors(t)[0].Host; got != ns.nsIP {
			t.Errorf("listed executor %s, want the one at %s", got, ns.nsIP)
		}
		rv := newCallbackReceiver(t)
		runID := runExampleJob(t, sched, rv)
		if !ranTask(member, runID) {
			t.Errorf("the executor in the namespace ran no task of the job")
		}
		if n := len(sched.executors(t)); n != 1 {
			t.Errorf("%d executors listed, want 1: a refused one got in", n)
		}

		_, view := sched.call(t, "GET", "/api/jobs/"+runID, nil)
		_, list := sched.call(t, "GET", "/api/jobs", nil)
		_, members := sched.call(t, "GET", "/api/cluster", nil)
		_, metrics := sched.call(t, "GET", "/metrics", nil)
		var callbacks []string
		for _, kind := range []string{"progress", "complete", "error"} {
			for _, b := range rv.of(kind, runID) {
				callbacks = append(callbacks, string(b))
			}
		}
		for where, text := range map[string]string{
			"the scheduler's log": sched.logs(), "the executor's log": member.logs(), "the refused executors' logs": forger.logs() + anonymous.logs(),
			"GET /api/jobs/{run_id}": string(view), "GET /api/jobs": string(list), "GET /api/cluster": string(members),
			"/metrics": string(metrics), "the callbacks": strings.Join(callbacks, "\n"),
		} {
			noSecret(t, where, text, clusterToken, apiToken)
		}
	})
}

// With a certificate and a client CA, the cluster port speaks mutual TLS:
// an executor with the CA and a client certificate (given by environment
// variables) joins and runs a job; one without the CA does not trust the
// scheduler, and one without a client certificate is refused.
func TestClusterMutualTLS(t *testing.T) {
	t.Parallel()
	files := kallatest.WriteTLSFiles(t, t.TempDir(), "127.0.0.1")
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startSchedulerArgs(t, data, []string{"--cluster-tls-cert", files.ServerCert, "--cluster-tls-key", files.ServerKey, "--cluster-ca", files.CA})
	natsURL := "tls://127.0.0.1:" + port(t, sched.natsURL(t))
	if !strings.HasPrefix(sched.natsURL(t), "tls://") {
		t.Errorf("the scheduler's cluster URL is %s, want tls://", sched.natsURL(t))
	}
	// Client certificates authenticate: the cluster port is not in
	// protected mode; the API, without KALLA_API_TOKEN, is.
	if lines := protectedLine.FindAllString(sched.logs(), -1); len(lines) != 1 || strings.Contains(lines[0], "cluster port") {
		t.Errorf("protected-mode lines: %q, want one naming /api/* only", lines)
	}
	untrusting := launchExecutor(t, nil, []string{"--nats-url", natsURL, "--staging-path", staging,
		"--cluster-tls-cert", files.ClientCert, "--cluster-tls-key", files.ClientKey})
	anonymous := launchExecutor(t, nil, []string{"--nats-url", natsURL, "--staging-path", staging, "--cluster-ca", files.CA})
	waitLog(t, "the executor without the CA to distrust the scheduler", untrusting.logs, "certificate signed by unknown authority")
	waitLog(t, "the executor without a client certificate to be refused", anonymous.logs, "certificate required")
	if n := len(sched.executors(t)); n != 0 {
		t.Fatalf("%d executors joined without the CA or a certificate", n)
	}
	member := startExecutor(t, sched, staging, "KALLA_CLUSTER_CA="+files.CA, "KALLA_CLUSTER_TLS_CERT="+files.ClientCert, "KALLA_CLUSTER_TLS_KEY="+files.ClientKey)
	runID := runExampleJob(t, sched, newCallbackReceiver(t))
	if !ranTask(member, runID) {
		t.Errorf("the executor ran no task of the job")
	}
	if n := len(sched.executors(t)); n != 1 {
		t.Errorf("%d executors listed, want 1", n)
	}
}

// With NKEYs, an executor holding an allowed seed joins; another seed or
// none is refused; the seed shows in no log.
func TestClusterNKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedFile := func(name string) (pub, path string, seed []byte) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ = kp.PublicKey()
		seed, _ = kp.Seed()
		path = filepath.Join(dir, name+".nk")
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return pub, path, seed
	}
	allowed, allowedSeedFile, allowedSeed := seedFile("allowed")
	_, otherSeedFile, otherSeed := seedFile("other")
	keys := filepath.Join(dir, "executors.pub")
	if err := os.WriteFile(keys, []byte("# kalla executors\n\n"+allowed+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startSchedulerArgs(t, data, []string{"--cluster-nkeys-file", keys})
	natsURL := sched.natsURL(t)
	other := launchExecutor(t, nil, []string{"--nats-url", natsURL, "--staging-path", staging, "--cluster-nkey-seed-file", otherSeedFile})
	anonymous := launchExecutor(t, nil, []string{"--nats-url", natsURL, "--staging-path", staging})
	waitLog(t, "the executor with another seed to be refused", other.logs, "authorization violation")
	waitLog(t, "the executor without a seed to be refused", anonymous.logs, "authorization violation")
	member := startExecutor(t, sched, staging, "KALLA_CLUSTER_NKEY_SEED_FILE="+allowedSeedFile)
	if n := len(sched.executors(t)); n != 1 {
		t.Errorf("%d executors listed, want 1", n)
	}
	for where, text := range map[string]string{"the scheduler's log": sched.logs(), "the executors' logs": member.logs() + other.logs() + anonymous.logs()} {
		noSecret(t, where, text, string(allowedSeed), string(otherSeed))
	}
}

// Wrong security settings stop kallad at start with one clear line that
// shows no secret.
func TestClusterAuthStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	files := kallatest.WriteTLSFiles(t, dir, "127.0.0.1")
	sched := []string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1", "--data-dir", filepath.Join(dir, "data")}
	exe := []string{"executor", "--bind-port", "-1", "--nats-url", "nats://127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"token in env and file", append(sched, "--cluster-token-file", write("tok", "s3cret-file")), []string{"KALLA_CLUSTER_TOKEN=s3cret-env"}, "KALLA_CLUSTER_TOKEN and --cluster-token-file are both set"},
		{"empty token file", append(sched, "--cluster-token-file", write("empty", "\n")), nil, "the file is empty"},
		{"seed in the scheduler's keys", append(sched, "--cluster-nkeys-file", write("keys", string(seed)+"\n")), nil, "line 1 holds a seed"},
		{"token and NKEYs", append(sched, "--cluster-nkeys-file", write("pub", mustPub(t, kp)+"\n")), []string{"KALLA_CLUSTER_TOKEN=s3cret-env"}, "exclusive"},
		{"certificate without key", append(sched, "--cluster-tls-cert", files.ServerCert), nil, "both a certificate and its key"},
		{"client CA without certificate", append(sched, "--cluster-ca", files.CA), nil, "needs the server's own certificate"},
		{"API token in env and file", append(sched, "--api-token-file", write("api", "s3cret-file")), []string{"KALLA_API_TOKEN=s3cret-env"}, "KALLA_API_TOKEN and --api-token-file are both set"},
		{"embedded-server flag with --nats-url", append(sched, "--nats-url", "nats://127.0.0.1:1", "--cluster-tls-cert", files.ServerCert, "--cluster-tls-key", files.ServerKey), nil, "--nats-url replaces"},
		{"executor: missing CA", append(exe, "--cluster-ca", filepath.Join(dir, "missing.pem")), nil, "missing.pem"},
		{"executor: token and seed", append(exe, "--cluster-nkey-seed-file", write("seed", string(seed))), []string{"KALLA_CLUSTER_TOKEN=s3cret-env"}, "exclusive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := kalladFails(t, dir, tc.env, tc.args...)
			lastLine := stderr[strings.LastIndex(strings.TrimRight(stderr, "\n"), "\n")+1:]
			if code == 0 || !strings.Contains(lastLine, tc.want) {
				t.Errorf("exit %d, last line %q, want %q", code, lastLine, tc.want)
			}
			noSecret(t, "stderr", stderr, "s3cret-env", "s3cret-file", string(seed))
		})
	}
}

// kalladFails runs kallad with env added and returns its stderr and exit
// code; a kallad still running after a minute has not refused to start.
func kalladFails(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kalladBin, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kallad %v still runs after a minute:\n%s", args, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run kallad: %v", err)
	}
	return stderr.String(), cmd.ProcessState.ExitCode()
}

func mustPub(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// A NATS URL's credentials never show in the executor's log, though it
// logs the URL at each failed attempt and when it joins.
func TestClusterURLCredentialsNotLogged(t *testing.T) {
	t.Parallel()
	token := randomSecret(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_CLUSTER_TOKEN="+token)
	hostPort := strings.TrimPrefix(sched.natsURL(t), "nats://")
	password := randomSecret(t)
	refused := launchExecutor(t, nil, []string{"--nats-url", "nats://kalla:" + password + "@" + hostPort, "--staging-path", staging})
	waitLog(t, "the executor with a wrong password to be refused", refused.logs, `scheduler not reachable yet.*authorization violation`)
	if !strings.Contains(refused.logs(), hostPort) {
		t.Errorf("the executor's log does not say which URL it tried:\n%s", refused.logs())
	}
	member := startExecutor(t, sched, staging, "KALLA_CLUSTER_TOKEN="+token)
	waitLog(t, "the executor to say it is ready", member.logs, `msg="executor ready"`)
	noSecret(t, "the refused executor's log", refused.logs(), password)
	noSecret(t, "the logs", sched.logs()+member.logs()+refused.logs(), token)
}
