package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// schedProc is a running `kallad scheduler` process (kallatest.Scheduler).
type schedProc struct {
	*kallatest.Scheduler
	t   *testing.T
	url string
}

// startScheduler starts `kallad scheduler` on free ports with its durable
// state in dataDir, and waits until /ready answers 200. env is added to the
// process's environment; a KALLA_API_TOKEN in it is sent with every call.
func startScheduler(t *testing.T, dataDir string, env ...string) *schedProc {
	t.Helper()
	return startSchedulerArgs(t, dataDir, nil, env...)
}

// startSchedulerArgs is startScheduler with args added to (and overriding)
// the command line's.
func startSchedulerArgs(t *testing.T, dataDir string, args []string, env ...string) *schedProc {
	t.Helper()
	s := kallatest.StartScheduler(t, kallatest.SchedulerConfig{Bin: kalladBin, DataDir: dataDir, Args: args, Env: env})
	return &schedProc{Scheduler: s, t: t, url: s.URL}
}

func (p *schedProc) logs() string { return p.Logs() }

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *schedProc) kill() { p.Kill() }

// terminate ends the process with SIGTERM and returns its exit error.
func (p *schedProc) terminate() error { return p.Terminate(p.t) }

// submit POSTs job and returns the status code and body.
func (p *schedProc) submit(t *testing.T, job any) (int, []byte) {
	t.Helper()
	return p.Submit(t, job)
}

func (p *schedProc) call(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	return p.Call(t, method, path, body)
}

// job returns the API view of runID.
func (p *schedProc) job(t *testing.T, runID string) kallahttp.JobView {
	t.Helper()
	var v kallahttp.JobView
	p.Job(t, runID, &v)
	return v
}

// waitState polls the job until it reaches state.
func (p *schedProc) waitState(t *testing.T, runID string, state kalla.JobState) kallahttp.JobView {
	t.Helper()
	var v kallahttp.JobView
	p.WaitState(t, runID, state, &v)
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
