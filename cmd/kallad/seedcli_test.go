package main

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

var probeAddrRe = regexp.MustCompile(`msg="executor probes listening".* addr=\S+:(\d+)`)

// The seed's benchmarks/run_cluster_benchmark.sh starts two executors on one
// host with its own flags, and benchmarks/run_benchmark.sh waits for the
// scheduler's log to say "Run <run_id> completed" or "failed". Both work
// unchanged: the Ballista port flags are accepted and logged as ignored,
// the executors' probe ports do not clash, every job ends with the seed's
// line, and both kinds of process spill to the system temp dir.
func TestSeedCommandLines(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	tmp := t.TempDir()
	// TMPDIR: where the processes must spill; BIND_PORT unset as on a
	// developer's machine.
	env := []string{"TMPDIR=" + tmp, "BIND_PORT=", "RUST_LOG=info"}
	// Hold the seed's default probe port, as a first executor would have:
	// the executors must not need it. (If something else holds it, it is
	// taken just the same.)
	if ln, err := net.Listen("tcp", ":50051"); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	sched := startScheduler(t, work, env...)
	u, err := url.Parse(sched.natsURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var execs []*execProc
	for i, ports := range [][2]string{{"50051", "50053"}, {"50052", "50054"}} {
		// The seed's line, run in the scheduler's working folder so that
		// the default ./staging is the scheduler's staging folder.
		argv := []string{kalladBin, "executor",
			"--scheduler-host", u.Hostname(),
			"--scheduler-port", u.Port(),
			"--flight-port", ports[0],
			"--grpc-port", ports[1],
			"--external-host", "localhost"}
		execs = append(execs, launchExecutorIn(t, work, argv, env...))
		waitUntil(t, "the scheduler to list the seed's executors", func() bool {
			for _, e := range execs {
				select {
				case <-e.exited:
					t.Fatalf("executor %d exited:\n%s", i+1, e.logs())
				default:
				}
			}
			return len(sched.executors(t)) == len(execs)
		})
	}

	probePorts := map[string]bool{}
	for i, e := range execs {
		logs := e.logs()
		if n := strings.Count(logs, "ignoring the seed's executor port flags"); n != 1 {
			t.Errorf("executor %d logs the ignored flags %d times:\n%s", i+1, n, logs)
		}
		if !strings.Contains(logs, "--flight-port=5005") || !strings.Contains(logs, "--grpc-port=5005") {
			t.Errorf("executor %d: the ignored line does not name the flags:\n%s", i+1, logs)
		}
		m := probeAddrRe.FindStringSubmatch(logs)
		if m == nil {
			t.Fatalf("executor %d logs no probe address:\n%s", i+1, logs)
		}
		probePorts[m[1]] = true
		if _, stderr, code := kallad(t, work, "health", "http://127.0.0.1:"+m[1]); code != 0 {
			t.Errorf("executor %d probes on port %s: kallad health exit %d: %s", i+1, m[1], code, stderr)
		}
	}
	if len(probePorts) != 2 {
		t.Errorf("probe ports %v: want two ports picked free", probePorts)
	}

	// Spilling is local: every engine's folder is under TMPDIR, none is in
	// the shared staging folder.
	spills, _ := filepath.Glob(filepath.Join(tmp, "kalla-*"))
	if len(spills) < 3 {
		t.Errorf("TMPDIR holds %d kalla- folders, want one per process (3): %v", len(spills), spills)
	}
	staged, _ := filepath.Glob(filepath.Join(work, "staging", "kalla-*"))
	if len(staged) != 0 {
		t.Errorf("engine folders in the staging folder: %v", staged)
	}

	// One job after the other: concurrent distributed jobs can hang (see
	// the report on the seedcli branch), which is not what this tests.
	done := exampleJob(t, "", t.TempDir())
	failing := exampleJob(t, "", t.TempDir())
	failing["sources"].([]any)[0].(map[string]any)["uri"] = "postgres://kalla:hunter2@127.0.0.1:1/db?table=invoices"
	slow := exampleJob(t, "", t.TempDir())
	slow["match_sql"] = slowMatchSQL
	for _, step := range []struct {
		job    map[string]any
		cancel bool
		line   string
	}{
		{done, false, " completed: 5 matched, 4 unmatched_left, 3 unmatched_right"},
		{failing, false, " failed: "},
		{slow, true, " failed: job cancelled"},
	} {
		id := step.job["run_id"].(string)
		if code, body := sched.submit(t, step.job); code != 202 {
			t.Fatalf("submit: %d %s", code, body)
		}
		if step.cancel {
			sched.waitState(t, id, kalla.JobRunning)
			if code, body := sched.call(t, "DELETE", "/api/jobs/"+id, nil); code >= 300 {
				t.Fatalf("cancel: %d %s", code, body)
			}
		}
		// What run_benchmark.sh greps for.
		want := "Run " + id + step.line
		waitUntil(t, "the scheduler's log to say "+want, func() bool { return strings.Contains(sched.logs(), want) })
	}
	logs := sched.logs()
	if strings.Contains(logs, "hunter2") {
		t.Errorf("a password is in the scheduler's log")
	}
	// Our own lines stay.
	if !strings.Contains(logs, `msg="job completed"`) {
		t.Errorf("the scheduler's log lacks its own completion line")
	}
	// One seed line per job, each on its own log line.
	for _, id := range []string{done["run_id"].(string), failing["run_id"].(string), slow["run_id"].(string)} {
		if n := strings.Count(logs, "Run "+id+" "); n != 1 {
			t.Errorf("%d seed lines for %s", n, id)
		}
	}
}

// Flags after the job path are parsed, in `kallad run` as in the other
// subcommands; "--" still ends them.
func TestFlagsAfterOperands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	job := exampleJob(t, "", filepath.Join(dir, "out"))
	delete(job, "run_id")
	raw, _ := json.Marshal(job)
	jobPath := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := kallad(t, dir, "run", jobPath, "--memory-limit", "1GB", "--progress", "never")
	var res kalla.Result
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.MatchedCount != 5 {
		t.Fatalf("run JOB --memory-limit 1GB: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// The flag after the operand is the one used: a bad value fails.
	_, stderr, code = kallad(t, dir, "run", jobPath, "--memory-limit", "lots")
	if code == 0 || !strings.Contains(stderr, "lots") || strings.Contains(stderr, "Usage:") {
		t.Errorf("run JOB --memory-limit lots: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = kallad(t, dir, "run", jobPath, "--", "--memory-limit", "1GB")
	if code != 2 || !strings.Contains(stderr, "Usage: kallad run") {
		t.Errorf("run JOB -- --memory-limit 1GB: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = kallad(t, dir, "run", jobPath, "--nope")
	if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -nope") {
		t.Errorf("run JOB --nope: exit %d, stderr %q", code, stderr)
	}
	// Daemons take no operand, wherever their flags are.
	_, stderr, code = kallad(t, dir, "executor", "stray", "--bind-port", "-1")
	if code != 2 || !strings.Contains(stderr, "Usage: kallad executor") {
		t.Errorf("executor stray: exit %d, stderr %q", code, stderr)
	}
}

// The deployment files and the flag help's own example set a percentage;
// this is the command exactly.
//
// NOTE for the lead: fails on this branch ("Unknown unit for memory: '%'")
// until the sandbox branch's duckdb/ change (percentages converted to bytes)
// is merged; it passes after that merge.
func TestMemoryLimitPercent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"job.json", "invoices.csv", "payments.csv"} {
		raw, err := os.ReadFile(filepath.Join(examplesDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "examples", f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := []string{"run", "examples/job.json"}
	stdout, stderr, code := kalladIn(t, dir, []string{"KALLA_MEMORY_LIMIT=75%"}, cmd...)
	var res kalla.Result
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.MatchedCount != 5 {
		t.Fatalf("KALLA_MEMORY_LIMIT=75%% kallad run examples/job.json: exit %d, stderr %q", code, stderr)
	}
}
