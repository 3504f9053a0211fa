package main

import (
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// kallad_tasks_queued counts the executor tasks no executor has taken: with
// one executor of one task slot busy on a slow match task, the job's other
// match task waits and is counted, and the count is 0 again once the job
// is done.
func TestClusterTasksQueuedMetric(t *testing.T) {
	t.Parallel()
	inv, pay := ducktest.WritePatternParquet(t, t.TempDir())
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data) // --partitions 2: two match tasks
	startExecutor(t, sched, staging, "KALLA_MAX_TASKS=1")
	if m := sched.metric(t, "kallad_tasks_queued"); m != "0" {
		t.Errorf("kallad_tasks_queued = %s before any job, want 0", m)
	}

	job := patternJob(slowPatternSQL, inv, pay, rv.base(), t)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitUntil(t, "kallad_tasks_queued 1 while the executor runs the other match task", func() bool {
		return sched.metric(t, "kallad_tasks_queued") == "1" && sched.metric(t, "kallad_tasks_running") == "1"
	})
	completeResult(t, rv, runID)
	waitUntil(t, "kallad_tasks_queued 0 after the job", func() bool { return sched.metric(t, "kallad_tasks_queued") == "0" })
}
