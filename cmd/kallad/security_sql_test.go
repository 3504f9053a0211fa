package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/cluster"
	"github.com/kalla-dev/kalla/distributed"
)

// secretMarker is in a file no job may read; it must appear in no response,
// error or log.
const secretMarker = "kalla-secret-7f3a"

// hostileJobs are match_sql escapes a client would try, with the name the
// refusal must carry.
func hostileMatchSQL(secret string) []struct{ sql, names string } {
	return []struct{ sql, names string }{
		{"SELECT 1 AS invoice_id, 1 AS payment_id, content FROM read_text('" + secret + "')", "read_text"},
		{"SELECT * FROM read_csv('" + secret + "')", "read_csv"},
		{"SELECT * FROM '" + secret + "'", secret},
		{"SELECT * FROM glob('/*')", "glob"},
		{"SELECT * FROM read_blob('kalla-data/jetstream/*')", "read_blob"},
		{"SELECT * FROM duckdb_tables()", "duckdb_tables"},
		{"SELECT * FROM information_schema.tables", "information_schema.tables"},
		{"SELECT * FROM kalla_job_1.left_src", "kalla_job_1.left_src"},
		{"SELECT current_setting('temp_directory') AS invoice_id", "current_setting"},
		{"SELECT * FROM left_src; COPY left_src TO '/tmp/kalla-stolen.csv'", "single SELECT"},
	}
}

// Against the real scheduler and `kallad run`, every hostile match_sql is
// refused as invalid on match_sql, naming the offence, leaking nothing.
func TestHostileMatchSQLRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("password\n"+secretMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sched := startScheduler(t, filepath.Join(dir, "data"))
	for _, tc := range hostileMatchSQL(secret) {
		job := exampleJob(t, "", filepath.Join(dir, "out"))
		job["match_sql"] = tc.sql
		code, body := sched.submit(t, job)
		var e struct{ Error, Field, Code string }
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Field != "match_sql" || !strings.Contains(e.Error, tc.names) {
			t.Errorf("POST %s: %d %s; want 400 on match_sql naming %s", tc.sql, code, body, tc.names)
		}
		if strings.Contains(string(body), secretMarker) {
			t.Errorf("POST %s: the response leaks the file: %s", tc.sql, body)
		}

		path := filepath.Join(dir, "job.json")
		raw, _ := json.Marshal(job)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, exit := kallad(t, dir, "run", path)
		if exit != 2 || !strings.Contains(stderr, "match_sql") || !strings.Contains(stderr, tc.names) {
			t.Errorf("kallad run %s: exit %d, stderr %q; want 2 naming match_sql and %s", tc.sql, exit, stderr, tc.names)
		}
		if strings.Contains(stdout+stderr, secretMarker) {
			t.Errorf("kallad run %s: output leaks the file", tc.sql)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused job wrote its output folder")
	}
	if _, err := os.Stat("/tmp/kalla-stolen.csv"); err == nil {
		t.Errorf("/tmp/kalla-stolen.csv was written")
	}
	if strings.Contains(sched.logs(), secretMarker) {
		t.Errorf("the scheduler log leaks the file")
	}
}

// A task published on the cluster port with valid credentials but hostile
// content is refused by a real executor before anything of it runs: no
// file is written, and the refusal is reported as the task's result.
func TestForgedTaskRefusedByExecutor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const token = "cluster-token-for-forged-task-test"
	sched := startScheduler(t, filepath.Join(dir, "data"), "KALLA_CLUSTER_TOKEN="+token)
	url := strings.Replace(sched.natsURL(t), "nats://", "nats://"+token+"@", 1)
	exec := startExecutorURL(t, sched, url, filepath.Join(dir, "data", "staging"))

	nc, err := nats.Connect(sched.natsURL(t), nats.Token(token))
	if err != nil {
		t.Fatalf("connect with the cluster token: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := js.KeyValue(ctx, "KALLA_TASK_RESULTS")
	if err != nil {
		t.Fatal(err)
	}

	written := filepath.Join(dir, "written")
	var job kalla.Job
	raw, _ := json.Marshal(exampleJob(t, "", filepath.Join(dir, "out")))
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	spec := kalla.MatchSpec{Rules: []kalla.RuleSpec{{Name: "match", SQL: job.MatchSQL,
		Left:  kalla.KeyMapping{Alias: "left_src", SourceColumns: []string{"invoice_id"}, ResultColumns: []string{"invoice_id"}},
		Right: kalla.KeyMapping{Alias: "right_src", SourceColumns: []string{"payment_id"}, ResultColumns: []string{"payment_id"}},
	}}}
	cases := []struct {
		name, field string
		forge       func(t *cluster.ExecTask)
	}{
		{"copy to a file", "match_sql", func(x *cluster.ExecTask) {
			x.Kind = cluster.TaskJob
			x.Job.MatchSQL = "SELECT 1 AS invoice_id, 1 AS payment_id; COPY (SELECT 1) TO '" + written + ".csv'"
		}},
		{"read_text", "match_sql", func(x *cluster.ExecTask) {
			x.Kind = cluster.TaskJob
			x.Job.MatchSQL = "SELECT 1 AS invoice_id, 1 AS payment_id, content FROM read_text('/etc/passwd')"
		}},
		{"multi-statement spec", "task.match.spec.rules[0]", func(x *cluster.ExecTask) {
			x.Kind = cluster.TaskMatch
			x.Match = &distributed.PartitionSpec{Parts: 2, Dir: x.Root + "/match/p0", Spec: spec, Broadcast: -1}
			x.Match.Spec.Rules[0].SQL = job.MatchSQL + "; COPY (SELECT 1) TO '" + written + ".parquet'"
		}},
		{"dir outside staging", "task.stage.dir", func(x *cluster.ExecTask) {
			x.Kind = cluster.TaskStage
			x.Stage = &distributed.StageSpec{Side: 0, Hash: `hash("invoice_id")`, Parts: 2, Dir: x.Root + "/../../../../written"}
		}},
		{"hash injection", "task.stage.hash", func(x *cluster.ExecTask) {
			x.Kind = cluster.TaskStage
			x.Stage = &distributed.StageSpec{Side: 0, Parts: 2, Dir: x.Root + "/stage/0-0",
				Hash: `hash("invoice_id")) FROM left_src; COPY (SELECT 1) TO '` + written + `.txt'; SELECT (1`}
		}},
	}
	for _, tc := range cases {
		gen := nuid.Next()
		task := &cluster.ExecTask{Gen: gen, ID: "forged", Job: job, Root: distributed.AttemptDir(job.RunID, gen)}
		tc.forge(task)
		data, err := json.Marshal(task)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "kalla.exec."+gen, data); err != nil {
			t.Fatalf("publish forged task: %v", err)
		}
		var res cluster.TaskResult
		waitUntil(t, "the executor to report the forged task "+tc.name, func() bool {
			e, err := results.Get(ctx, gen+".forged")
			return err == nil && json.Unmarshal(e.Value(), &res) == nil
		})
		if !res.Validation || !strings.Contains(res.Error, "refused") || !strings.Contains(res.Error, tc.field) {
			t.Errorf("%s: result %+v; want a validation error naming %s", tc.name, res, tc.field)
		}
		if res.Delivery != 1 {
			t.Errorf("%s: refused on delivery %d; a refusal is final, not retried", tc.name, res.Delivery)
		}
	}
	for _, suffix := range []string{"", ".csv", ".parquet", ".txt"} {
		if _, err := os.Stat(written + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a forged task wrote %s", written+suffix)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a forged task wrote the job's output")
	}
	logs := exec.logs()
	if n := strings.Count(logs, "task refused"); n != len(cases) {
		t.Errorf("the executor logged %d refusals, want %d:\n%s", n, len(cases), logs)
	}
	if strings.Contains(logs, "root:x:") || strings.Contains(sched.logs(), "root:x:") {
		t.Errorf("a log leaks /etc/passwd")
	}
}
