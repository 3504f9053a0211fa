package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// scaleMetrics are the metrics an operator (and KEDA) watches while
// executors scale; scrapeScale reads them.
var scaleMetrics = []string{"kallad_executor_demand", "kallad_jobs_running_local", "kallad_queue_depth",
	"kallad_tasks_queued", "kallad_tasks_running", "kallad_active_jobs", "kallad_job_slots", "kallad_executors_connected"}

// scrapeScale reads scaleMetrics from the scheduler's /metrics; it does not
// touch t, so a sampling goroutine may call it.
func scrapeScale(url string) (map[string]float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	got := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		for _, name := range scaleMetrics {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if got[name], err = strconv.ParseFloat(v, 64); err != nil {
					return nil, fmt.Errorf("%s: %w", line, err)
				}
			}
		}
	}
	for _, name := range scaleMetrics {
		if _, ok := got[name]; !ok {
			return nil, fmt.Errorf("metric %s not served", name)
		}
	}
	return got, nil
}

// scaleTimeline samples the scale metrics and /ready every 100ms and keeps
// the samples where one changed, for the log (and the operators' doc); it
// counts the samples where /ready did not answer 200.
type scaleTimeline struct {
	url      string
	start    time.Time
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	lines    []string
	last     string
	notReady []string
}

func sampleScale(url string) *scaleTimeline {
	tl := &scaleTimeline{url: url, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tl.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			tl.sample("")
			select {
			case <-tl.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return tl
}

// sample scrapes once and records the sample if it changed or what is set.
func (tl *scaleTimeline) sample(what string) {
	line := "ready=?"
	if resp, err := http.Get(tl.url + "/ready"); err == nil {
		line = fmt.Sprintf("ready=%d", resp.StatusCode)
		resp.Body.Close()
	}
	if m, err := scrapeScale(tl.url); err == nil {
		line += fmt.Sprintf(" demand=%g local=%g queue_depth=%g tasks_queued=%g tasks_running=%g active=%g/%g executors=%g",
			m["kallad_executor_demand"], m["kallad_jobs_running_local"], m["kallad_queue_depth"], m["kallad_tasks_queued"],
			m["kallad_tasks_running"], m["kallad_active_jobs"], m["kallad_job_slots"], m["kallad_executors_connected"])
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	at := time.Since(tl.start).Seconds()
	if !strings.HasPrefix(line, "ready=200 ") {
		tl.notReady = append(tl.notReady, fmt.Sprintf("%.2fs %s", at, line))
	}
	if line != tl.last || what != "" {
		if what != "" {
			what = " <- " + what
		}
		tl.lines = append(tl.lines, fmt.Sprintf("%6.2fs %s%s", at, line, what))
		tl.last = line
	}
}

func (tl *scaleTimeline) end() (timeline string, notReady []string) {
	close(tl.stop)
	<-tl.done
	return strings.Join(tl.lines, "\n"), tl.notReady
}

// The scheduler stays ready while its job slots are full, and
// kallad_executor_demand — what KEDA scales executors on — counts the work
// executors could take: a job running in the scheduler for want of
// executors (which kallad_queue_depth + kallad_tasks_queued missed), a job
// waiting for an executor beyond --local-jobs, and queued jobs. An executor
// that joins takes the waiting job's tasks, and demand is 0 once idle.
func TestScaleSignal(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startSchedulerArgs(t, data, []string{"--max-jobs", "2", "--local-jobs", "1", "--executor-wait", "5m"})
	tl := sampleScale(sched.url)
	scale := func(t *testing.T) map[string]float64 {
		t.Helper()
		m, err := scrapeScale(sched.url)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ready := func(t *testing.T) (int, string, bool) {
		t.Helper()
		resp, err := http.Get(sched.url + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Status    string
			Saturated bool
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body.Status, body.Saturated
	}

	if m := scale(t); m["kallad_executor_demand"] != 0 || m["kallad_job_slots"] != 2 {
		t.Fatalf("idle: %v, want demand 0 and 2 job slots", m)
	}
	var ids []string
	submit := func() string {
		job := exampleJob(t, "", t.TempDir())
		job["match_sql"] = slowMatchSQL
		if code, body := sched.submit(t, job); code != 202 {
			t.Fatalf("submit: %d %s", code, body)
		}
		ids = append(ids, job["run_id"].(string))
		return job["run_id"].(string)
	}

	// One job, no executor: it runs in the scheduler. The old trigger
	// (queue depth + queued tasks) reads 0 here; demand reads 1.
	tl.sample("job 1 submitted")
	submit()
	waitUntil(t, "the first job to run locally", func() bool {
		m := scale(t)
		return m["kallad_jobs_running_local"] == 1 && m["kallad_executor_demand"] == 1
	})
	if m := scale(t); m["kallad_queue_depth"]+m["kallad_tasks_queued"] != 0 {
		t.Errorf("one local job: queue depth %g, tasks queued %g, want 0 (only demand sees it)", m["kallad_queue_depth"], m["kallad_tasks_queued"])
	}

	// Four more: the second slot's job waits for an executor (its plan
	// task queues), three wait in the queue.
	tl.sample("jobs 2-5 submitted")
	for range 4 {
		submit()
	}
	waitUntil(t, "demand 5: 3 queued jobs + 1 local job + 1 queued task", func() bool {
		m := scale(t)
		return m["kallad_executor_demand"] == 5 && m["kallad_queue_depth"] == 3 && m["kallad_tasks_queued"] == 1 && m["kallad_jobs_running_local"] == 1
	})
	code, status, saturated := ready(t)
	if code != 200 || status != "ready" || !saturated {
		t.Fatalf("/ready with both job slots taken: %d %s saturated=%v, want 200 ready saturated=true", code, status, saturated)
	}
	// A busy scheduler serves its API: a job's state, the executor list.
	if v := sched.job(t, ids[4]); v.State != kalla.JobQueued {
		t.Fatalf("fifth job: %s, want queued", v.State)
	}

	// An executor joins: it takes the waiting job's tasks at once.
	tl.sample("executor started")
	joinStart := time.Now()
	exec := startExecutor(t, sched, staging)
	joined := time.Since(joinStart)
	tl.sample("executor listed")
	waitUntil(t, "the executor to take a task", func() bool { return strings.Contains(exec.logs(), `msg="task started"`) })
	took := time.Since(joinStart)
	tl.sample("executor took a task")
	if m := scale(t); m["kallad_executor_demand"] < 2 || m["kallad_tasks_running"] < 1 {
		t.Errorf("with the executor running a task: %v, want demand ≥ 2 and a task running", m)
	}
	t.Logf("executor started → listed in %s, → first task started in %s", joined.Round(time.Millisecond), took.Round(time.Millisecond))
	// The job goes on to its match tasks (2 partitions, the executor runs
	// one at a time): demand counts the one running and the one queued.
	waitUntil(t, "the match tasks", func() bool {
		m := scale(t)
		return strings.Contains(exec.logs(), "kind=match") && m["kallad_tasks_running"] == 1 && m["kallad_tasks_queued"] == 1
	})
	tl.sample("distributed job matching")

	// Everything cancelled: demand falls back to 0.
	tl.sample("all jobs cancelled")
	for _, id := range ids {
		if code, body := sched.call(t, "DELETE", "/api/jobs/"+id, nil); code != 200 && code != 202 {
			t.Fatalf("cancel %s: %d %s", id, code, body)
		}
	}
	waitUntil(t, "demand 0 once idle", func() bool {
		m := scale(t)
		return m["kallad_executor_demand"] == 0 && m["kallad_active_jobs"] == 0
	})
	tl.sample("idle")
	if code, status, saturated := ready(t); code != 200 || status != "ready" || saturated {
		t.Errorf("/ready idle: %d %s saturated=%v", code, status, saturated)
	}
	timeline, notReady := tl.end()
	t.Logf("scale metrics over time (changes only):\n%s", timeline)
	if len(notReady) > 0 {
		t.Errorf("/ready did not answer 200 while the scheduler served:\n%s", strings.Join(notReady, "\n"))
	}
}

// With --local-jobs 0 no job runs in the scheduler: with no executor, a
// job's tasks wait (and count as demand) for --executor-wait, then the job
// fails with an error that says why.
func TestScaleNoLocalJobsWaitsForExecutors(t *testing.T) {
	t.Parallel()
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--local-jobs", "0", "--executor-wait", "3s"})
	job := exampleJob(t, "", t.TempDir())
	runID := job["run_id"].(string)
	submitted := time.Now()
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "the job's plan task to wait for an executor", func() bool {
		m, err := scrapeScale(sched.url)
		return err == nil && m["kallad_tasks_queued"] == 1 && m["kallad_executor_demand"] == 1 && m["kallad_jobs_running_local"] == 0
	})
	v := sched.waitState(t, runID, kalla.JobFailed)
	waited := time.Since(submitted)
	t.Logf("job failed %s after it was submitted (--executor-wait 3s)", waited.Round(10*time.Millisecond))
	if waited < 3*time.Second {
		t.Errorf("job failed after %s, before --executor-wait 3s", waited)
	}
	if v.Error == nil || !strings.Contains(v.Error.Error, "no executor alive for 3s") {
		t.Fatalf("error: %+v, want one saying no executor was alive for 3s", v.Error)
	}
	if !strings.Contains(sched.logs(), "no executor alive and no local job slot free; the job waits for an executor") {
		t.Errorf("the scheduler did not log why the job waited")
	}
	waitUntil(t, "demand 0 after the job failed", func() bool {
		m, err := scrapeScale(sched.url)
		return err == nil && m["kallad_executor_demand"] == 0
	})
}

// Bad scale settings are refused at start with the flag or variable named.
func TestScaleFlagsRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--local-jobs", "-2"}, "", "--local-jobs -2: must be 0 or more"},
		{[]string{"--executor-wait", "10ms"}, "", "--executor-wait 10ms: must be at least 1s"},
		{nil, "KALLA_LOCAL_JOBS=some", `KALLA_LOCAL_JOBS="some" is not an integer`},
		{nil, "KALLA_EXECUTOR_WAIT=5", `KALLA_EXECUTOR_WAIT="5" is not a duration`},
	} {
		cmd := exec.Command(kalladBin, append([]string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--data-dir", t.TempDir()}, c.args...)...)
		cmd.Env = append(os.Environ(), c.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v %s: %v\n%s\nwant an error containing %q", c.args, c.env, err, out, c.want)
		}
	}
}

// A scheduler whose job store stops answering (its external NATS server
// died) is not ready, while /health still answers: the balancer stops
// sending it requests it could not serve.
func TestReadyFailsWithoutStore(t *testing.T) {
	t.Parallel()
	nats := startScheduler(t, t.TempDir())
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--nats-url", nats.natsURL(t)})
	readyStatus := func() (int, string) {
		resp, err := http.Get(sched.url + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Status
	}
	if code, status := readyStatus(); code != 200 {
		t.Fatalf("/ready with the store up: %d %s", code, status)
	}
	nats.kill()
	killed := time.Now()
	waitUntil(t, "/ready to say the store is unreachable", func() bool {
		code, status := readyStatus()
		return code == 503 && status == "store unreachable"
	})
	t.Logf("/ready 503 %s after the NATS server was killed", time.Since(killed).Round(time.Millisecond))
	resp, err := http.Get(sched.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/health with the store down: %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(sched.logs(), "readiness: the job store does not answer") {
		t.Errorf("the scheduler did not log why it is not ready")
	}
}
