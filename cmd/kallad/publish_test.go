package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// publishHook is the test-only folder through which kallad reports that a
// publish reached a point and waits to be resumed (file/testhook.go).
type publishHook struct {
	t   *testing.T
	dir string
}

func newPublishHook(t *testing.T) *publishHook {
	return &publishHook{t: t, dir: t.TempDir()}
}

// env is the scheduler environment that turns the hook on.
func (h *publishHook) env() string { return "KALLA_TEST_PUBLISH_HOOK_DIR=" + h.dir }

// waitMark waits for a mark "<name>.<what>" other than those in skip and
// returns its name.
func (h *publishHook) waitMark(what string, skip ...string) string {
	h.t.Helper()
	var found string
	waitUntil(h.t, "a publish to be "+what, func() bool {
		entries, _ := os.ReadDir(h.dir)
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), "."+what)
			if ok && !contains(skip, name) {
				found = name
				return true
			}
		}
		return false
	})
	return found
}

// resume lets the paused publish of name go on.
func (h *publishHook) resume(name string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name+".resume"), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readSummary returns the summary.json of folder, or nil when there is none.
func readSummary(t *testing.T, folder string) *kalla.Result {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(folder, kalla.SummaryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var res kalla.Result
	if err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("summary.json: %v %s", err, b)
	}
	return &res
}

// checkConsistent checks that the Parquet files of folder hold the rows
// its summary.json counts, and that no temporary folder is left.
func checkConsistent(t *testing.T, folder string, want *kalla.Result) {
	t.Helper()
	got := readSummary(t, folder)
	if got == nil || got.RunID != want.RunID {
		t.Fatalf("summary.json is %+v, want run %s", got, want.RunID)
	}
	for name, n := range map[string]int64{
		kalla.MatchedFile:        want.MatchedCount,
		kalla.UnmatchedLeftFile:  want.UnmatchedLeftCount,
		kalla.UnmatchedRightFile: want.UnmatchedRightCount,
	} {
		rows := ducktest.Rows(t, "SELECT count(*) FROM '"+filepath.Join(folder, name)+"'")
		if len(rows) != 1 || rows[0] != strconv.FormatInt(n, 10) {
			t.Errorf("%s holds %v rows, summary.json of run %s says %d", name, rows, want.RunID, n)
		}
	}
	entries, _ := os.ReadDir(folder)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".kalla-tmp-") {
			t.Errorf("temporary folder left: %s", e.Name())
		}
	}
}

// oneInvoiceJob is the example job restricted to one invoice, so that its
// counts differ from the full example's.
func oneInvoiceJob(t *testing.T, output string) map[string]any {
	job := exampleJob(t, "", output)
	left := job["sources"].([]any)[0].(map[string]any)
	left["filters"] = []any{map[string]any{"column": "invoice_id", "op": "eq", "value": "INV-1001"}}
	return job
}

// Two jobs on one output folder: while the first is publishing (held in
// the middle of its renames), it holds the folder's lock and the second
// waits for it; the folder ends with one run's complete, consistent set.
func TestPublishOneWriterPerFolder(t *testing.T) {
	t.Parallel()
	hook := newPublishHook(t)
	sched := startScheduler(t, t.TempDir(), hook.env(), "MAX_CONCURRENT_JOBS=2")
	out := filepath.Join(t.TempDir(), "results")
	first, second := exampleJob(t, "", out), oneInvoiceJob(t, out)
	firstID, secondID := first["run_id"].(string), second["run_id"].(string)

	if code, body := sched.submit(t, first); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	paused := hook.waitMark("paused")
	// Mid-publish: matched.parquet is in place, summary.json is not, and
	// the folder's lock is held (as another process sees it).
	if readSummary(t, out) != nil {
		t.Fatal("summary.json present in the middle of a publish")
	}
	lock, err := os.OpenFile(filepath.Join(out, ".kalla-lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("folder lock during a publish: %v, want it held", err)
	}
	lock.Close()

	if code, body := sched.submit(t, second); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	hook.waitMark("waiting") // the second job waits for the lock
	hook.resume(paused)
	hook.resume(hook.waitMark("paused", paused))
	firstRes := sched.waitState(t, firstID, kalla.JobCompleted).Result
	secondRes := sched.waitState(t, secondID, kalla.JobCompleted).Result
	if firstRes.MatchedCount == secondRes.MatchedCount {
		t.Fatalf("both runs matched %d rows: the test cannot tell them apart", firstRes.MatchedCount)
	}
	checkConsistent(t, out, secondRes)
}

// SIGKILL in the middle of a publish: summary.json is absent (never
// beside files of another run), the lock dies with the process, and the
// job's retry after the restart cleans the leftovers and publishes a
// complete, consistent set.
func TestPublishKilledMidway(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "results")
	// A previous complete result, from `kallad run`.
	jobFile := filepath.Join(t.TempDir(), "job.json")
	prev := exampleJob(t, "", out)
	delete(prev, "run_id")
	b, _ := json.Marshal(prev)
	if err := os.WriteFile(jobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := kallad(t, t.TempDir(), "run", jobFile); code != 0 {
		t.Fatalf("kallad run: %d %s", code, stderr)
	}
	if readSummary(t, out) == nil {
		t.Fatal("no previous result")
	}

	hook := newPublishHook(t)
	dataDir := t.TempDir()
	env := []string{"KALLA_ACK_WAIT=2s"}
	first := startScheduler(t, dataDir, append(env, hook.env())...)
	job := oneInvoiceJob(t, out)
	runID := job["run_id"].(string)
	if code, body := first.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	hook.waitMark("paused")
	first.kill()

	// What a reader finds: no summary.json, so no result claimed; the
	// temporary folder is left behind; the lock is free.
	if s := readSummary(t, out); s != nil {
		t.Fatalf("summary.json of run %s beside a half-replaced result", s.RunID)
	}
	var left []string
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".kalla-tmp-") {
			left = append(left, e.Name())
		}
	}
	if len(left) != 1 {
		t.Fatalf("temporary folders after the kill: %v, want one", left)
	}
	lock, err := os.OpenFile(filepath.Join(out, ".kalla-lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("folder lock after the kill: %v, want it free", err)
	}
	lock.Close()

	second := startScheduler(t, dataDir, env...)
	res := second.waitState(t, runID, kalla.JobCompleted).Result
	checkConsistent(t, out, res)
}
