package kallatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// SchedulerConfig says how StartScheduler runs `kallad scheduler`.
type SchedulerConfig struct {
	// Bin is the kallad binary the test built.
	Bin string
	// DataDir is its --data-dir; --staging-path is DataDir/staging.
	// Empty: a folder of the test's.
	DataDir string
	// Args are added to the command line, after (so overriding) the
	// defaults: free ports, loopback, no cluster port, 2 partitions.
	Args []string
	// Env is added to the process's environment.
	Env []string
}

// Scheduler is a running `kallad scheduler` process, killed when its test
// ends (its log is then shown if the test failed).
type Scheduler struct {
	// URL is http://host:port of its HTTP listener; a scheduler bound to
	// every address is reached on loopback.
	URL     string
	DataDir string
	LogPath string
	// Token is sent as the bearer token by Call; StartScheduler sets it
	// from KALLA_API_TOKEN in Env.
	Token  string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

var listenRe = regexp.MustCompile(`msg="http api listening".* addr=(\S+)`)

// StartScheduler starts `kallad scheduler` and waits until /ready
// answers 200 (busy or not).
func StartScheduler(t testing.TB, cfg SchedulerConfig) *Scheduler {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	logPath := filepath.Join(t.TempDir(), "scheduler.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cfg.Bin, append([]string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1",
		"--data-dir", cfg.DataDir, "--staging-path", filepath.Join(cfg.DataDir, "staging"), "--partitions", "2"}, cfg.Args...)...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Scheduler{DataDir: cfg.DataDir, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	for _, e := range cfg.Env {
		if v, ok := strings.CutPrefix(e, "KALLA_API_TOKEN="); ok {
			s.Token = v
		}
	}
	go func() {
		s.err = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("scheduler log:\n%s", s.Logs())
		}
	})
	WaitFor(t, "the scheduler to listen", 2*time.Minute, func() bool {
		select {
		case <-s.exited:
			t.Fatalf("scheduler exited: %v\n%s", s.err, s.Logs())
		default:
		}
		m := listenRe.FindStringSubmatch(s.Logs())
		if m == nil {
			return false
		}
		host, port, _ := net.SplitHostPort(m[1])
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		s.URL = "http://" + net.JoinHostPort(host, port)
		return true
	})
	WaitFor(t, "/ready", 2*time.Minute, func() bool {
		resp, err := http.Get(s.URL + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// Logs is what the process wrote so far.
func (s *Scheduler) Logs() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Signal sends sig to the process (SIGSTOP to freeze it, say).
func (s *Scheduler) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Exited is closed when the process has ended.
func (s *Scheduler) Exited() <-chan struct{} { return s.exited }

// Kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (s *Scheduler) Kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Terminate ends the process with SIGTERM and returns its exit error,
// failing t if it has not stopped within a minute.
func (s *Scheduler) Terminate(t testing.TB) error {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("scheduler did not stop after SIGTERM\n%s", s.Logs())
	}
	return s.err
}

// Call sends a request to the scheduler with its Token and returns the
// status and body.
func (s *Scheduler) Call(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Submit POSTs job to /api/jobs and returns the status and body.
func (s *Scheduler) Submit(t testing.TB, job any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return s.Call(t, "POST", "/api/jobs", body)
}

// Job decodes GET /api/jobs/{runID} into v, failing t on any other answer
// than 200.
func (s *Scheduler) Job(t testing.TB, runID string, v any) {
	t.Helper()
	if err := json.Unmarshal(s.job(t, runID), v); err != nil {
		t.Fatalf("GET job %s: %v", runID, err)
	}
}

func (s *Scheduler) job(t testing.TB, runID string) []byte {
	t.Helper()
	code, body := s.Call(t, "GET", "/api/jobs/"+runID, nil)
	if code != 200 {
		t.Fatalf("GET job %s: %d %s", runID, code, body)
	}
	return body
}

// WaitState polls the job until it is in state, and decodes that answer
// into v.
func (s *Scheduler) WaitState(t testing.TB, runID string, state kalla.JobState, v any) {
	t.Helper()
	WaitFor(t, "job "+runID+" to be "+string(state), 2*time.Minute, func() bool {
		body := s.job(t, runID)
		var head struct {
			State kalla.JobState `json:"state"`
		}
		if err := json.Unmarshal(body, &head); err != nil || head.State != state {
			return false
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET job %s: %v", runID, err)
		}
		return true
	})
}
