package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/benchmarks/internal/kalladproc"
	"github.com/kalla-dev/kalla/internal/childproc"
)

// scheduler is a running `kallad scheduler` child process.
type scheduler struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startScheduler starts `kallad scheduler` on free ports of 127.0.0.1, with
// its durable state and staging under dir, and waits until /ready is 200.
func startScheduler(ctx context.Context, bin, dir string, extra []string) (*scheduler, error) {
	s := &scheduler{logPath: filepath.Join(dir, "scheduler.log")}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	args := append([]string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1",
		"--data-dir", filepath.Join(dir, "data"), "--staging-path", filepath.Join(dir, "staging"),
		"--log-format", "json"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if s.exited, err = childproc.Start(s.cmd, syscall.SIGTERM, &s.waitErr); err != nil {
		return nil, fmt.Errorf("start kallad scheduler: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("kallad scheduler exited on start: %v\n%s", s.waitErr, s.tail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if s.url == "" {
			if addr := s.logField("http api listening", "addr"); addr != "" {
				s.url = "http://" + addr
			}
		} else if resp, err := http.Get(s.url + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("kallad scheduler not ready after 2m\n%s", s.tail())
		}
	}
}

// logField returns field of the first JSON log line whose msg is msg.
func (s *scheduler) logField(msg, field string) string {
	return kalladproc.LogField(s.logPath, msg, field)
}

// tail returns the end of the scheduler's log, for error messages.
func (s *scheduler) tail() string { return kalladproc.Tail(s.logPath, 4000) }

// stop sends SIGTERM (a graceful shutdown) and waits for the exit; after a
// minute it kills the process.
func (s *scheduler) stop() error {
	if !childproc.Stop(s.cmd, s.exited, syscall.SIGTERM, time.Minute) {
		return errors.New("kallad scheduler did not stop within a minute of SIGTERM; killed")
	}
	return s.waitErr
}

// usage is the scheduler's CPU time so far (user plus system, from
// /proc/PID/stat in clock ticks of 1/100 s) and its peak resident memory
// since the last resetPeak; zero when unknown.
func (s *scheduler) usage() (cpuSeconds float64, peakRSS int64) {
	pid := s.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				k, _ := strconv.ParseInt(f[12], 10, 64)
				cpuSeconds = float64(u+k) / 100
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				peakRSS = kb << 10
			}
		}
	}
	return cpuSeconds, peakRSS
}

// resetPeak restarts the peak-RSS count (Linux: 5 > /proc/PID/clear_refs),
// so that usage reports the next job's peak. It reports whether it could.
func (s *scheduler) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0) == nil
}

// submit POSTs job to the scheduler and expects 202.
func (s *scheduler) submit(ctx context.Context, job *kalla.Job) error {
	body, err := json.Marshal(job)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/jobs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := os.Getenv("KALLA_API_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /api/jobs: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /api/jobs: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// receiver takes the scheduler's callbacks at {base}/{run_id}/{kind}.
type receiver struct {
	srv  *http.Server
	base string

	mu   sync.Mutex
	runs map[string]*watch
}

// watch is what one run's callbacks told.
type watch struct {
	done     chan struct{}
	at       time.Time // when the final callback arrived
	result   *kalla.Result
	failure  *kalla.ErrorReport
	finals   int // complete and error callbacks received
	progress int
	stage    kalla.Stage
	// onStage is called when a progress callback names a new stage.
	onStage func(kalla.Progress)
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("callback receiver: %w", err)
	}
	r := &receiver{base: "http://" + ln.Addr().String() + "/callbacks", runs: map[string]*watch{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /callbacks/{run}/{kind}", r.handle)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

// expect registers run_id and returns the callback_url for its job.
func (r *receiver) expect(runID string, onStage func(kalla.Progress)) (*watch, string) {
	w := &watch{done: make(chan struct{}), onStage: onStage}
	r.mu.Lock()
	r.runs[runID] = w
	r.mu.Unlock()
	return w, r.base + "/" + runID
}

func (r *receiver) handle(rw http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.runs[req.PathValue("run")]
	if w == nil {
		http.Error(rw, "unknown run", http.StatusNotFound)
		return
	}
	switch req.PathValue("kind") {
	case "progress":
		var p kalla.Progress
		if json.Unmarshal(body, &p) == nil {
			w.progress++
			if p.Stage != w.stage && w.finals == 0 {
				w.stage = p.Stage
				if w.onStage != nil {
					w.onStage(p)
				}
			}
		}
	case "complete", "error":
		w.finals++
		if w.finals > 1 {
			break // a second final callback is counted, not taken
		}
		w.at = now
		if req.PathValue("kind") == "complete" {
			w.result = &kalla.Result{}
			err = json.Unmarshal(body, w.result)
		} else {
			w.failure = &kalla.ErrorReport{}
			err = json.Unmarshal(body, w.failure)
		}
		if err != nil {
			w.failure = &kalla.ErrorReport{Error: fmt.Sprintf("undecodable %s callback: %v: %s", req.PathValue("kind"), err, body)}
			w.result = nil
		}
		close(w.done)
	default:
		http.Error(rw, "unknown callback", http.StatusNotFound)
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// finalCount returns how many final callbacks w has had so far.
func (r *receiver) finalCount(w *watch) (finals, progress int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return w.finals, w.progress
}
