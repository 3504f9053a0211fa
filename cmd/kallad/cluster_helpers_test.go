package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// execProc is a running `kallad executor`.
type execProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

var natsURLRe = regexp.MustCompile(`msg="nats server started" url=(\S+)`)

// natsURL is the scheduler's cluster address, from its log.
func (p *schedProc) natsURL(t *testing.T) string {
	t.Helper()
	m := natsURLRe.FindStringSubmatch(p.logs())
	if m == nil {
		t.Fatalf("no nats url in the scheduler log:\n%s", p.logs())
	}
	return m[1]
}

// startExecutor starts `kallad executor` joined to sched, staging in
// staging, with env added to its environment, and waits until the
// scheduler lists it.
func startExecutor(t *testing.T, sched *schedProc, staging string, env ...string) *execProc {
	t.Helper()
	return startExecutorURL(t, sched, sched.natsURL(t), staging, env...)
}

// startExecutorURL is startExecutor joining the cluster at url (which may
// carry credentials).
func startExecutorURL(t *testing.T, sched *schedProc, url, staging string, env ...string) *execProc {
	t.Helper()
	before := len(sched.executors(t))
	p := launchExecutor(t, nil, []string{"--nats-url", url, "--staging-path", staging}, env...)
	waitUntil(t, "the scheduler to list the new executor", func() bool { return len(sched.executors(t)) > before })
	return p
}

// launchExecutor starts `kallad executor` with args added to (and
// overriding) its defaults and env added to its environment, under the
// command prefix if any (ip netns exec NS), and returns at once.
func launchExecutor(t *testing.T, prefix, args []string, env ...string) *execProc {
	t.Helper()
	argv := slices.Concat(prefix, []string{kalladBin, "executor", "--bind-port", "-1", "--partitions", "1", "--external-host", "127.0.0.1"}, args)
	return launchExecutorIn(t, "", argv, env...)
}

// launchExecutorIn runs the command line argv (kallad executor ...) in the
// working folder dir ("" for the test's) and returns at once.
func launchExecutorIn(t *testing.T, dir string, argv []string, env ...string) *execProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "executor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &execProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("executor log:\n%s", p.logs())
		}
	})
	return p
}

func (p *execProc) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *execProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// executors returns GET /api/cluster's executors.
func (p *schedProc) executors(t *testing.T) []distributed.ExecutorInfo {
	t.Helper()
	code, body := p.call(t, "GET", "/api/cluster", nil)
	var v struct {
		Executors []distributed.ExecutorInfo `json:"executors"`
	}
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("GET /api/cluster: %d %s", code, body)
	}
	return v.Executors
}

// clusterPatterns are the reconciliation patterns and the split each gets.
var clusterPatterns = []struct{ name, mode, sql string }{
	{"one_to_one_tolerance", "partition", `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
		FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`},
	{"one_to_many_split", "partition", `SELECT i.invoice_id, p.payment_id, p.amount FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		WHERE i.amount = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.invoice_ref = i.invoice_id)`},
	{"many_to_one_batch", "partition", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON i.batch_id = p.batch_ref
		WHERE p.amount = (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.batch_id = p.batch_ref)`},
	{"many_to_many_cross", "partition", `SELECT i.invoice_id, p.payment_id, i.customer FROM left_src i JOIN right_src p ON i.customer = p.customer
		WHERE (SELECT sum(i2.amount) FROM left_src i2 WHERE i2.customer = i.customer) = (SELECT sum(p2.amount) FROM right_src p2 WHERE p2.customer = p.customer)`},
	{"broadcast_range", "broadcast", `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.amount BETWEEN i.amount - 0.001 AND i.amount AND i.invoice_id % 7 = 0`},
	{"single_aggregate", "single", `SELECT i.invoice_id, max(p.payment_id) AS payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id GROUP BY i.invoice_id`},
}

// sameOutputs compares two results and every row and column type of their
// files.
func sameOutputs(t *testing.T, got, want kalla.Result) {
	t.Helper()
	g, w := kallatest.Timeless(got), kallatest.Timeless(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("cluster result %+v\n  local result %+v", g, w)
	}
	for _, f := range [][2]string{{got.OutputPaths.Matched, want.OutputPaths.Matched}, {got.OutputPaths.UnmatchedLeft, want.OutputPaths.UnmatchedLeft}, {got.OutputPaths.UnmatchedRight, want.OutputPaths.UnmatchedRight}} {
		gs, ws := ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+f[0]+"')"), ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+f[1]+"')")
		if strings.Join(gs, "\n") != strings.Join(ws, "\n") {
			t.Errorf("%s schema:\n%q\nlocal:\n%q", filepath.Base(f[0]), gs, ws)
		}
		gr, wr := ducktest.Rows(t, "SELECT * FROM '"+f[0]+"'"), ducktest.Rows(t, "SELECT * FROM '"+f[1]+"'")
		if strings.Join(gr, "\n") != strings.Join(wr, "\n") {
			t.Errorf("%s: %d rows, local %d; they differ", filepath.Base(f[0]), len(gr), len(wr))
		}
	}
}

// runLocal runs job with `kallad run` into its own output and returns the
// payload.
func runLocal(t *testing.T, job map[string]any) kalla.Result {
	t.Helper()
	return runLocalEnv(t, job)
}

// runLocalEnv is runLocal with env added to `kallad run`'s environment.
func runLocalEnv(t *testing.T, job map[string]any, env ...string) kalla.Result {
	t.Helper()
	local := map[string]any{}
	for k, v := range job {
		local[k] = v
	}
	delete(local, "callback_url")
	local["output_path"] = t.TempDir()
	path := filepath.Join(t.TempDir(), "job.json")
	raw, _ := json.Marshal(local)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kalladBin, "run", "--partitions", "2", path)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kallad run: %v: %s", err, stderr.String())
	}
	var res kalla.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// failedOnce waits for runID's error callback and returns its report,
// checking that exactly one was sent and recorded and that the job's
// staging files are gone.
func failedOnce(t *testing.T, sched *schedProc, rv *callbackReceiver, runID, staging string) kalla.ErrorReport {
	t.Helper()
	var report kalla.ErrorReport
	if err := json.Unmarshal(rv.wait(t, "error", runID), &report); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the error callback to be recorded", func() bool { return sched.job(t, runID).Callback.Delivered })
	if n := len(rv.of("error", runID)); n != 1 {
		t.Errorf("%d error callbacks, want 1", n)
	}
	if !stagingEmpty(t, staging) {
		t.Errorf("staging files left after the failed job")
	}
	return report
}
