package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/benchmarks/internal/kalladproc"
	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/internal/childproc"
)

// jobJSON is the benchmark job over in's sources, as the scheduler's API
// and `kallad run` take it.
func jobJSON(in input, out string) ([]byte, error) {
	job := benchdata.Job(in.left, in.right, out)
	job.RunID = kalla.NewRunID()
	b, err := json.Marshal(&job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	return b, nil
}

// runLocal runs the job with `kallad run`.
func runLocal(ctx context.Context, bin, dir string, in input, parts int) measurement {
	m := measurement{mode: "kallad run"}
	fail := func(err error) measurement { m.err = err; return m }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	raw, err := jobJSON(in, filepath.Join(dir, "out"))
	if err != nil {
		return fail(err)
	}
	jobPath := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobPath, raw, 0o644); err != nil {
		return fail(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "run", "--partitions", strconv.Itoa(runtime.NumCPU()), "--temp-dir", filepath.Join(dir, "tmp"), jobPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if m.seconds, err = elapsed(cmd.Run); err != nil {
		return fail(fmt.Errorf("kallad run: %w: %s", err, tail(stderr.String())))
	}
	var res kalla.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return fail(fmt.Errorf("kallad run printed %q: %w", tail(stdout.String()), err))
	}
	m.counts = benchdata.ResultCounts(&res)
	return m
}

// proc is a kallad child process logging JSON into a file.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// start starts kallad with args; the child gets SIGKILL if this process
// dies.
func start(bin, logPath string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	p := &proc{cmd: exec.Command(bin, args...), logPath: logPath}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.exited, err = childproc.Start(p.cmd, syscall.SIGKILL, &p.waitErr)
	return p, err
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (p *proc) stop() {
	childproc.Stop(p.cmd, p.exited, syscall.SIGTERM, 30*time.Second)
}

// logField returns field of the first JSON log line whose msg is msg.
func (p *proc) logField(msg, field string) string { return kalladproc.LogField(p.logPath, msg, field) }

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	return tail(string(b))
}

func tail(s string) string {
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// waitFor polls cond every 20 ms for up to 2 minutes, failing early if p
// exits.
func waitFor(ctx context.Context, p *proc, what string, cond func() bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		select {
		case <-p.exited:
			return fmt.Errorf("kallad exited while waiting for %s:\n%s", what, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s:\n%s", what, p.tail())
		}
	}
	return nil
}

// getJSON decodes GET url into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// runCluster starts a scheduler and execs executors on it (all using every
// core), waits until the scheduler lists them, and times one job from its
// submission to its completion.
func runCluster(ctx context.Context, bin, dir string, in input, parts, execs int) measurement {
	m := measurement{mode: fmt.Sprintf("scheduler + %d executors", execs)}
	if execs == 0 {
		m.mode = "scheduler, no executor"
	}
	fail := func(err error) measurement { m.err = err; return m }
	staging := filepath.Join(dir, "staging")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fail(err)
	}
	sched, err := start(bin, filepath.Join(dir, "scheduler.log"), "scheduler", "--http-port", "0", "--grpc-port", "-1",
		"--bind-host", "127.0.0.1", "--data-dir", filepath.Join(dir, "data"), "--staging-path", staging,
		"--partitions", strconv.Itoa(parts), "--log-format", "json")
	if err != nil {
		return fail(err)
	}
	defer sched.stop()
	var api, natsURL string
	if err := waitFor(ctx, sched, "the scheduler to listen", func() bool {
		api, natsURL = sched.logField("http api listening", "addr"), sched.logField("nats server started", "url")
		return api != "" && natsURL != ""
	}); err != nil {
		return fail(err)
	}
	api = "http://" + api
	for i := range execs {
		e, err := start(bin, filepath.Join(dir, fmt.Sprintf("executor-%d.log", i)), "executor", "--nats-url", natsURL,
			"--bind-port", "-1", "--staging-path", staging, "--external-host", "127.0.0.1", "--log-format", "json")
		if err != nil {
			return fail(err)
		}
		defer e.stop()
	}
	if err := waitFor(ctx, sched, fmt.Sprintf("%d executors to join", execs), func() bool {
		var v struct {
			Executors []json.RawMessage `json:"executors"`
		}
		return getJSON(api+"/api/cluster", &v) == nil && len(v.Executors) == execs
	}); err != nil {
		return fail(err)
	}

	raw, err := jobJSON(in, filepath.Join(dir, "out"))
	if err != nil {
		return fail(err)
	}
	var job struct {
		RunID string `json:"run_id"`
		State string `json:"state"`
		Error *struct {
			Error string `json:"error"`
		} `json:"error"`
		Result *kalla.Result `json:"result"`
	}
	m.seconds, err = elapsed(func() error {
		resp, err := http.Post(api+"/api/jobs", "application/json", bytes.NewReader(raw))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("POST /api/jobs: %s: %s", resp.Status, body)
		}
		if err := json.Unmarshal(body, &job); err != nil {
			return err
		}
		return waitFor(ctx, sched, "the job to end", func() bool {
			return getJSON(api+"/api/jobs/"+job.RunID, &job) == nil && (job.State == "completed" || job.State == "failed" || job.State == "cancelled")
		})
	})
	switch {
	case err != nil:
		return fail(err)
	case job.State != "completed" || job.Result == nil:
		msg := job.State
		if job.Error != nil {
			msg += ": " + job.Error.Error
		}
		return fail(fmt.Errorf("job %s", msg))
	}
	m.counts = benchdata.ResultCounts(job.Result)
	m.shuffle, m.partial, m.phases = shuffleAndPhases(api)
	return m
}

// shuffleAndPhases reads the shuffle volume (staged partitions, partial
// results) and the phase durations from the scheduler's metrics.
func shuffleAndPhases(api string) (shuffle, partial int64, phases map[string]float64) {
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		return 0, 0, nil
	}
	defer resp.Body.Close()
	phases = map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "kallad_shuffle_bytes_total":
			shuffle = int64(v)
		case "kallad_partial_result_bytes_total":
			partial = int64(v)
		}
		if rest, ok := strings.CutPrefix(name, `kallad_cluster_stage_duration_seconds_sum{stage="`); ok {
			phases[strings.TrimSuffix(rest, `"}`)] = v
		}
	}
	return shuffle, partial, phases
}
