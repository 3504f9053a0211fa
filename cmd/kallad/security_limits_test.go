package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
)

// A job that runs past --job-timeout is stopped and fails once, not
// retried, with one error callback naming the limit; on one scheduler and
// on an executor.
func TestLimitsJobTimeout(t *testing.T) {
	t.Parallel()
	for _, distributed := range []bool{false, true} {
		name := "Local"
		if distributed {
			name = "Distributed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rv := newCallbackReceiver(t)
			data := t.TempDir()
			sched := startSchedulerArgs(t, data, []string{"--job-timeout", "3s", "--max-attempts", "2"})
			var exec *execProc
			if distributed {
				exec = startExecutor(t, sched, filepath.Join(data, "staging"))
			}
			job := exampleJob(t, rv.base(), t.TempDir())
			job["match_sql"] = slowMatchSQL
			runID := job["run_id"].(string)
			start := time.Now()
			if code, body := sched.submit(t, job); code != 202 {
				t.Fatalf("submit: %d %s", code, body)
			}
			var rep kalla.ErrorReport
			if err := json.Unmarshal(rv.wait(t, "error", runID), &rep); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if rep.Error != "job exceeded --job-timeout 3s" || rep.Stage != kalla.StageMatching {
				t.Fatalf("error callback %+v, want the timeout during matching", rep)
			}
			if took > 30*time.Second {
				t.Errorf("the job stopped %s after its submission, with --job-timeout 3s", took)
			}
			waitUntil(t, "the error callback recorded", func() bool { return sched.job(t, runID).Callback.Delivered })
			v := sched.job(t, runID)
			if v.State != kalla.JobFailed || len(v.Attempts) != 1 || v.Attempts[0].Outcome != "failed" {
				t.Fatalf("job after its timeout: state %s, attempts %+v; want failed after one attempt", v.State, v.Attempts)
			}
			if n := len(rv.of("error", runID)); n != 1 {
				t.Fatalf("%d error callbacks, want 1", n)
			}
			if distributed {
				waitUntil(t, "the executor to stop the job's task", func() bool {
					return strings.Contains(exec.logs(), "task stopped: its job attempt ended")
				})
			}
		})
	}
}

func TestLimitsRunJobTimeout(t *testing.T) {
	t.Parallel()
	job := exampleJob(t, "", t.TempDir())
	job["match_sql"] = slowMatchSQL
	path := filepath.Join(t.TempDir(), "job.json")
	data, _ := json.Marshal(job)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stdout, stderr, code := kallad(t, t.TempDir(), "run", "--job-timeout", "2s", path)
	if code == 0 || stdout != "" || strings.TrimSpace(stderr) != "kallad: matching: job exceeded --job-timeout 2s" {
		t.Fatalf("kallad run past its timeout: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("kallad run --job-timeout 2s took %s", d)
	}
}

// With --max-queued jobs waiting a new job gets 429 with Retry-After, and
// a resubmission of a known run still gets its run.
func TestLimitsMaxQueued(t *testing.T) {
	t.Parallel()
	rv := newCallbackReceiver(t)
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--max-jobs", "1", "--max-queued", "1"})
	slow := func() map[string]any {
		j := exampleJob(t, rv.base(), t.TempDir())
		j["match_sql"] = slowMatchSQL
		return j
	}
	running, queued, refused := slow(), slow(), slow()
	// The refused job carries a database password: it must not come back.
	const secret = "s3cr3t-limits-pw"
	refused["sources"].([]any)[1].(map[string]any)["uri"] = "postgres://kalla:" + secret + "@127.0.0.1:1/db?table=public.payments"
	if code, body := sched.submit(t, running); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	sched.waitState(t, running["run_id"].(string), kalla.JobRunning)
	if code, body := sched.submit(t, queued); code != 202 {
		t.Fatalf("submit below --max-queued: %d %s", code, body)
	}

	body, _ := json.Marshal(refused)
	resp, err := http.Post(sched.url+"/api/jobs", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e kallahttp.ErrorBody
	if err := json.Unmarshal(answer, &e); err != nil {
		t.Fatalf("429 answer %s: %v", answer, err)
	}
	if strings.Contains(string(answer), secret) || strings.Contains(sched.logs(), secret) {
		t.Fatalf("the refused job's password is in the answer or the log:\n%s\n%s", answer, sched.logs())
	}
	if resp.StatusCode != 429 || e.Code != "queue_full" || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "--max-queued 1") {
		t.Fatalf("submit beyond --max-queued: %d %+v Retry-After %q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	if code, body := sched.call(t, "GET", "/api/jobs/"+refused["run_id"].(string), nil); code != 404 {
		t.Fatalf("the refused job was stored: %d %s", code, body)
	}
	code, out := sched.submit(t, queued)
	var v kallahttp.JobView
	if code != 200 || json.Unmarshal(out, &v) != nil || v.State != kalla.JobQueued {
		t.Fatalf("resubmission with a full queue: %d %s, want 200 and the queued run", code, out)
	}
}

// GET /api/jobs pages through every run exactly once, newest first.
func TestLimitsListPages(t *testing.T) {
	t.Parallel()
	sched := startScheduler(t, t.TempDir())
	var want []string
	for range 7 {
		j := exampleJob(t, "", t.TempDir())
		if code, body := sched.submit(t, j); code != 202 {
			t.Fatalf("submit: %d %s", code, body)
		}
		want = append(want, j["run_id"].(string))
	}
	slices.Reverse(want)
	var got []string
	path := "/api/jobs?limit=3"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the pages never end")
		}
		code, body := sched.call(t, "GET", path, nil)
		var page kallahttp.JobList
		if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Jobs) > 3 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		for _, v := range page.Jobs {
			got = append(got, v.RunID)
		}
		if page.Next == nil {
			break
		}
		path = "/api/jobs?limit=3&after=" + *page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages listed\n%v\nwant\n%v", got, want)
	}
	for _, q := range []struct{ query, field string }{{"limit=0", "limit"}, {"limit=5000", "limit"}, {"after=zzz", "after"}} {
		code, body := sched.call(t, "GET", "/api/jobs?"+q.query, nil)
		var e kallahttp.ErrorBody
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Field != q.field {
			t.Errorf("GET /api/jobs?%s: %d %s, want 400 naming %s", q.query, code, body, q.field)
		}
	}
}

// A client that trickles its request headers (slowloris) is disconnected
// after --http-header-timeout, and oversized headers are refused, while
// the API keeps answering others.
func TestLimitsSlowloris(t *testing.T) {
	t.Parallel()
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--http-header-timeout", "1s"})
	addr := strings.TrimPrefix(sched.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: kalla\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(conn) // returns when the server closes the connection
		closed <- err
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
				t.Fatalf("slow client cut after %s, want about 1s", d)
			}
			// The server still serves everyone else.
			resp, err := http.Get(sched.url + "/health")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("/health after the slow client: %v %v", resp, err)
			}
			resp.Body.Close()
			checkHugeHeader(t, addr)
			return
		case <-tick.C:
			if time.Since(start) > 20*time.Second {
				t.Fatal("the server kept a client trickling headers for 20s")
			}
			// Write errors are expected once the server hung up.
			_, _ = io.WriteString(conn, "X-Slow-"+strings.Repeat("a", i%5+1)+": 1\r\n")
		}
	}
}

// checkHugeHeader sends 1 MiB of headers and expects 431.
func checkHugeHeader(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		_, _ = io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: kalla\r\nX-Big: "+strings.Repeat("b", 1<<20)+"\r\n\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to 1 MiB of headers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("1 MiB of headers: %d, want 431", resp.StatusCode)
	}
}

// The temp folder of a process killed with SIGKILL is removed when the next
// process starts on the same --temp-dir; a live process's folder is kept.
func TestLimitsOrphanedTempRemoved(t *testing.T) {
	t.Parallel()
	temp := t.TempDir()
	folders := func() []string {
		matches, err := filepath.Glob(filepath.Join(temp, "kalla-*"))
		if err != nil {
			t.Fatal(err)
		}
		return matches
	}
	args := []string{"--temp-dir", temp}
	live := startSchedulerArgs(t, t.TempDir(), args)
	liveDirs := folders()
	if len(liveDirs) != 1 {
		t.Fatalf("temp folders of one live process: %v", liveDirs)
	}
	killed := startSchedulerArgs(t, t.TempDir(), args)
	both := folders()
	if len(both) != 2 {
		t.Fatalf("temp folders of two live processes: %v", both)
	}
	killed.kill()
	var orphan string
	for _, d := range both {
		if d != liveDirs[0] {
			orphan = d
		}
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatalf("the killed process's folder should still be there before the next start: %v", err)
	}
	// Something it spilled, as DuckDB would.
	if err := os.WriteFile(filepath.Join(orphan, "spill.tmp"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	next := startSchedulerArgs(t, t.TempDir(), args)
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphaned temp folder %s not removed at the next start: %v", orphan, err)
	}
	if _, err := os.Stat(liveDirs[0]); err != nil {
		t.Fatalf("the live process's temp folder was removed: %v", err)
	}
	if !strings.Contains(next.logs(), "removed the temp folder of a process that is gone") {
		t.Errorf("no log line for the removal:\n%s", next.logs())
	}
	if n := len(folders()); n != 2 {
		t.Fatalf("temp folders after the restart: %v, want the live one and the new one", folders())
	}
	_ = live
}
