package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// schedProc is a running `kallad scheduler` process.
type schedProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	logPath string
	// token is sent as the bearer token when set.
	token  string
	exited chan struct{}
	err    error
}

var listenRe = regexp.MustCompile(`msg="http api listening".* addr=(\S+)`)

// startScheduler starts `kallad scheduler` on free ports with its durable
// state in dataDir, and waits until /ready answers 200. env is added to the
// process's environment.
func startScheduler(t *testing.T, dataDir string, env ...string) *schedProc {
	t.Helper()
	return startSchedulerArgs(t, dataDir, nil, env...)
}

// startSchedulerArgs is startScheduler with args added to (and overriding)
// the command line's.
func startSchedulerArgs(t *testing.T, dataDir string, args []string, env ...string) *schedProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "scheduler.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kalladBin, "scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1",
		"--data-dir", dataDir, "--staging-path", filepath.Join(dataDir, "staging"), "--partitions", "2")
	cmd.Args = append(cmd.Args, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &schedProc{t: t, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("scheduler log:\n%s", p.logs())
		}
	})
	waitUntil(t, "the scheduler to listen", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("scheduler exited: %v\n%s", p.err, p.logs())
		default:
		}
		m := listenRe.FindStringSubmatch(p.logs())
		if m == nil {
			return false
		}
		p.url = "http://" + m[1]
		return true
	})
	// Started: /ready answers 200, busy or not.
	waitUntil(t, "/ready", func() bool {
		resp, err := http.Get(p.url + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *schedProc) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *schedProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// terminate ends the process with SIGTERM and returns its exit error.
func (p *schedProc) terminate() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("scheduler did not stop after SIGTERM\n%s", p.logs())
	}
	return p.err
}

// submit POSTs job and returns the status code and body.
func (p *schedProc) submit(t *testing.T, job any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return p.call(t, "POST", "/api/jobs", body)
}

func (p *schedProc) call(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// job returns the API view of runID.
func (p *schedProc) job(t *testing.T, runID string) kallahttp.JobView {
	t.Helper()
	code, body := p.call(t, "GET", "/api/jobs/"+runID, nil)
	var v kallahttp.JobView
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("GET job %s: %d %s", runID, code, body)
	}
	return v
}

// waitState polls the job until it reaches state.
func (p *schedProc) waitState(t *testing.T, runID string, state kalla.JobState) kallahttp.JobView {
	t.Helper()
	var v kallahttp.JobView
	waitUntil(t, fmt.Sprintf("job %s to be %s", runID, state), func() bool {
		v = p.job(t, runID)
		return v.State == state
	})
	return v
}

// metric returns the value of an unlabelled metric from /metrics.
func (p *schedProc) metric(t *testing.T, name string) string {
	t.Helper()
	_, body := p.call(t, "GET", "/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not served", name)
	return ""
}

// waitUntil polls cond until it holds, failing t after two minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kallatest.WaitFor(t, what, 2*time.Minute, cond)
}

// callbackReceiver is the client's side of the callbacks: it records every
// POST under its base URL.
type callbackReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]json.RawMessage // "progress", "complete", "error"
}

func newCallbackReceiver(t *testing.T) *callbackReceiver {
	t.Helper()
	return startReceiverOn(t, "127.0.0.1:0")
}

// startReceiverOn starts a receiver on addr (to bring one back on the port
// of one that went down).
func startReceiverOn(t *testing.T, addr string) *callbackReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rv := &callbackReceiver{got: map[string][]json.RawMessage{}}
	rv.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		kind := filepath.Base(r.URL.Path)
		rv.mu.Lock()
		rv.got[kind] = append(rv.got[kind], body)
		rv.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}}
	rv.srv.Start()
	t.Cleanup(rv.srv.Close)
	return rv
}

// base is the callback_url to give jobs.
func (rv *callbackReceiver) base() string { return rv.srv.URL + "/kalla" }

// of returns the callbacks of kind received for runID.
func (rv *callbackReceiver) of(kind, runID string) []json.RawMessage {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []json.RawMessage
	for _, b := range rv.got[kind] {
		var head struct {
			RunID string `json:"run_id"`
		}
		if json.Unmarshal(b, &head) == nil && head.RunID == runID {
			out = append(out, b)
		}
	}
	return out
}

// wait waits for the first callback of kind for runID.
func (rv *callbackReceiver) wait(t *testing.T, kind, runID string) json.RawMessage {
	t.Helper()
	waitUntil(t, kind+" callback of "+runID, func() bool { return len(rv.of(kind, runID)) > 0 })
	return rv.of(kind, runID)[0]
}

// stages lists the stages of the progress callbacks received for runID.
func (rv *callbackReceiver) stages(runID string) map[kalla.Stage]bool {
	out := map[kalla.Stage]bool{}
	for _, b := range rv.of("progress", runID) {
		var p kalla.Progress
		if json.Unmarshal(b, &p) == nil {
			out[p.Stage] = true
		}
	}
	return out
}

// examplesDir is the repository's examples folder.
func examplesDir(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// exampleJob is the bundled example as an API job.
func exampleJob(t *testing.T, callbackURL, outputPath string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	for _, s := range job["sources"].([]any) {
		src := s.(map[string]any)
		src["uri"] = filepath.Join(examplesDir(t), "..", src["uri"].(string))
	}
	job["run_id"] = kalla.NewRunID()
	job["output_path"] = outputPath
	if callbackURL != "" {
		job["callback_url"] = callbackURL
	}
	return job
}

// slowMatchSQL matches the example's sources with a query DuckDB needs
// hours for, so the job is still matching when the test acts on it.
const slowMatchSQL = `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
WHERE (SELECT count(*) FROM (SELECT unnest(generate_series(1, 200000)) AS range) a, (SELECT unnest(generate_series(1, 1000000)) AS range) b WHERE a.range + b.range < 0) = 0`
