package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// --nats-replicas is refused outside 1..5, and above 1 on the embedded
// server (a single server), with a message naming the flag.
func TestNATSReplicasRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--nats-replicas", "3"}, "", "--nats-replicas 3: the embedded NATS server is a single server"},
		{[]string{"--nats-url", "nats://127.0.0.1:1", "--nats-replicas", "0"}, "", "--nats-replicas 0: must be between 1 and 5"},
		{[]string{"--nats-url", "nats://127.0.0.1:1", "--nats-replicas", "6"}, "", "--nats-replicas 6: must be between 1 and 5"},
		{nil, "KALLA_NATS_REPLICAS=three", `KALLA_NATS_REPLICAS="three" is not an integer`},
	}
	for _, c := range cases {
		cmd := exec.Command(kalladBin, append([]string{"scheduler", "--http-port", "0", "--data-dir", filepath.Join(dir, "data")}, c.args...)...)
		cmd.Env = append(os.Environ(), "KALLA_NATS_REPLICAS="+strings.TrimPrefix(c.env, "KALLA_NATS_REPLICAS="))
		stderr, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(stderr), c.want) {
			t.Errorf("%v %s: %v, output %q, want %q", c.args, c.env, err, stderr, c.want)
		}
	}
}

// With --nats-replicas 3 on a 3-server NATS cluster, every JetStream asset
// the scheduler creates has three copies (an executor joining leaves them
// so), and the job running when the leader of the job store dies completes
// exactly once, its tasks run by the executor.
func TestSchedulerReplicatedSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	tx := lockTable(t, db, "payments")
	nc := startNATSCluster(t, 3)
	js := nc.jetStream()
	rv := newCallbackReceiver(t)
	dataDir := t.TempDir()
	sched := startSchedulerArgs(t, dataDir, []string{"--nats-url", nc.urls(), "--nats-replicas", "3"})
	ex := launchExecutor(t, nil, []string{"--nats-url", nc.urls(), "--staging-path", filepath.Join(dataDir, "staging")})
	waitUntil(t, "the executor to join", func() bool { return len(sched.executors(t)) == 1 })

	var storeLeader string
	streams := []string{"KV_KALLA_JOBS", "KALLA_JOBS_LIST", "KALLA_TASKS", "KALLA_EXEC", "KV_KALLA_TASK_RESULTS", "KV_KALLA_EXECUTORS"}
	for _, stream := range streams {
		info := streamInfo(t, js, stream)
		if info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: %d replicas, leader %s and %d followers; want 3", stream, info.Config.Replicas, info.Cluster.Leader, len(info.Cluster.Replicas))
		}
		if stream == "KV_KALLA_JOBS" {
			storeLeader = info.Cluster.Leader
		}
	}

	out := t.TempDir()
	job := postgresJob(db, rv.base(), out)
	runID := job["run_id"].(string)
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	sched.waitState(t, runID, kalla.JobRunning)
	waitLockWaiter(t, db, "payments")
	// The job waits for the locked table: kill the server leading the job
	// store, then let the job go on.
	nc.byName(storeLeader).Shutdown()
	// Every stream and the job queue's consumer have a leader among the
	// live servers again (an election takes seconds), so that the job's
	// last writes need no retry.
	for _, stream := range streams {
		waitUntil(t, "a live leader of "+stream, func() bool {
			info := streamInfo(t, js, stream)
			return info.Cluster.Leader != storeLeader
		})
	}
	waitUntil(t, "a live leader of the job queue's consumer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, "KALLA_TASKS", "kalla-runners")
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != storeLeader
	})
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &res); err != nil || res.MatchedCount != 900 {
		t.Fatalf("complete payload %+v %v", res, err)
	}
	v := sched.waitState(t, runID, kalla.JobCompleted)
	waitUntil(t, "complete callback recorded", func() bool { return sched.job(t, runID).Callback.Delivered })
	if len(v.Attempts) != 1 || v.Attempts[0].Outcome != "completed" {
		t.Errorf("attempts %+v, want one, completed", v.Attempts)
	}
	if !strings.Contains(ex.logs(), `msg="task started"`) {
		t.Errorf("the executor ran no task:\n%s", ex.logs())
	}
	var summary kalla.Result
	raw, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil || json.Unmarshal(raw, &summary) != nil || summary.MatchedCount != 900 {
		t.Errorf("summary.json %s %v", raw, err)
	}
	if err := sched.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if n, e := len(rv.of("complete", runID)), len(rv.of("error", runID)); n != 1 || e != 0 {
		t.Errorf("%d complete and %d error callbacks, want one complete", n, e)
	}
}

// fileIDs returns the inode of each file in dir but the output's lock: a
// publish renames new files into place, so a second publish changes them.
func fileIDs(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids[e.Name()] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return ids
}

// Two schedulers on one NATS: A runs a job and stalls (SIGSTOP) past its
// ack wait, B takes the job over and completes it. When A wakes up it
// learns it lost the job and stops: the output holds B's result, untouched
// by A, and the client gets one complete callback.
func TestSchedulerFencesStalledRunner(t *testing.T) {
	t.Parallel()
	db := seedPostgres(t)
	tx := lockTable(t, db, "payments")
	nc := startNATSCluster(t, 1)
	rv := newCallbackReceiver(t)
	// Five attempts: the stopped A may take one redelivery into its
	// pending fetch before B gets the task.
	args := []string{"--nats-url", nc.urls(), "--ack-wait", "2s", "--max-attempts", "5"}
	a := startSchedulerArgs(t, t.TempDir(), args)
	out := t.TempDir()
	job := postgresJob(db, rv.base(), out)
	runID := job["run_id"].(string)
	if code, body := a.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	a.waitState(t, runID, kalla.JobRunning)
	waitLockWaiter(t, db, "payments")
	if m := a.metric(t, "kallad_active_jobs"); m != "1" {
		t.Errorf("A's kallad_active_jobs = %s while it runs the job, want 1", m)
	}
	b := startSchedulerArgs(t, t.TempDir(), args)

	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = a.Signal(syscall.SIGCONT)
		}
	}()
	waitUntil(t, "B to take the job over", func() bool {
		v := b.job(t, runID)
		return v.State == kalla.JobRunning && len(v.Attempts) == 2
	})
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	var completed kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", runID), &completed); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, runID, kalla.JobCompleted)
	waitUntil(t, "complete callback recorded", func() bool { return b.job(t, runID).Callback.Delivered })
	published := fileIDs(t, out)
	if len(published) != 4 {
		t.Fatalf("output holds %v, want the four result files", published)
	}

	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	waitUntil(t, "A to learn it lost the job", func() bool {
		return strings.Contains(a.logs(), `msg="lost the job: another runner took it over`)
	})
	if now := fileIDs(t, out); !equalIDs(now, published) {
		t.Errorf("output files changed after A woke up: %v, B published %v", now, published)
	}
	// summary.json is B's: its elapsed_ms is that of B's complete callback.
	var summary kalla.Result
	raw, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil || json.Unmarshal(raw, &summary) != nil || !reflect.DeepEqual(summary, completed) {
		t.Errorf("summary.json %s (%v), want B's result %+v", raw, err, completed)
	}
	v := b.job(t, runID)
	if v.State != kalla.JobCompleted || len(v.Attempts) != 2 || v.Attempts[0].Outcome != "lost" || v.Attempts[1].Outcome != "completed" {
		t.Errorf("job view after A woke up: %s %+v", v.State, v.Attempts)
	}
	if m := a.metric(t, "kallad_jobs_completed_total"); m != "0" {
		t.Errorf("A's kallad_jobs_completed_total = %s, want 0", m)
	}
	if m := a.metric(t, "kallad_active_jobs"); m != "0" {
		t.Errorf("A's kallad_active_jobs = %s after it stopped, want 0", m)
	}
	if m := b.metric(t, "kallad_jobs_completed_total"); m != "1" {
		t.Errorf("B's kallad_jobs_completed_total = %s, want 1", m)
	}
	for _, p := range []*schedProc{a, b} {
		if err := p.terminate(); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
	if n, e := len(rv.of("complete", runID)), len(rv.of("error", runID)); n != 1 || e != 0 {
		t.Errorf("%d complete and %d error callbacks, want one complete", n, e)
	}
	if strings.Contains(b.logs(), "lost the job") {
		t.Errorf("B says it lost the job:\n%s", b.logs())
	}
}

func equalIDs(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
