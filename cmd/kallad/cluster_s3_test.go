package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// With --staging-path s3://bucket/prefix, a scheduler and two executor
// processes exchange partitions and partial results through an S3 server
// (sources on S3 are staged): the results equal `kallad run`'s row for row,
// the staged files did go through the prefix, and nothing is left under it
// after a completed or a failed job. No process logs a credential.
func TestClusterS3StagingEqualsLocal(t *testing.T) {
	t.Parallel()
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "kalla")
	dir := t.TempDir()
	inv, pay := ducktest.WritePatternParquet(t, dir)
	// The invoices are two objects under a prefix: the scheduler splits
	// the source (each stage task fetches one object, or its row groups).
	parts := [2]string{filepath.Join(dir, "invoices-part-0.parquet"), filepath.Join(dir, "invoices-part-1.parquet")}
	for k, part := range parts {
		ducktest.Query(t, fmt.Sprintf("COPY (SELECT * FROM '%s' WHERE invoice_id %% 2 = %d) TO '%s' (FORMAT parquet)", inv, k, part))
	}
	inv = filepath.Join(dir, "invoices-part-*.parquet")
	for key, p := range map[string]string{"sources/invoices/part-0.parquet": parts[0], "sources/invoices/part-1.parquet": parts[1], "sources/payments.parquet": pay} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srv.Put(t, "kalla", key, data)
	}
	const staging = "s3://kalla/staging"
	env := srv.Env(t)
	rv := newCallbackReceiver(t)
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--staging-path", staging}, append(env, "KALLA_MAX_ATTEMPTS=2")...)
	execs := []*execProc{startExecutor(t, sched, staging, env...), startExecutor(t, sched, staging, env...)}

	// stagingRequests counts the requests of each operation on runID's
	// staging keys.
	stagingRequests := func(runID string) map[string]int {
		n := map[string]int{}
		for _, r := range srv.Requests() {
			if r.Bucket == "kalla" && strings.HasPrefix(r.Key, "staging/cluster/"+runID+"/") {
				n[r.Op()]++
			}
		}
		return n
	}
	for _, pat := range clusterPatterns {
		if pat.name != "one_to_one_tolerance" && pat.name != "broadcast_range" {
			continue
		}
		t.Run(pat.name, func(t *testing.T) {
			job := patternJob(pat.sql, "s3://kalla/sources/invoices/", "s3://kalla/sources/payments.parquet", rv.base(), t)
			runID := job["run_id"].(string)
			if code, body := sched.submit(t, job); code != 202 {
				t.Fatalf("submit: %d %s", code, body)
			}
			got := completeResult(t, rv, runID)
			// `kallad run` reads the same files from the local disk.
			local := patternJob(pat.sql, inv, pay, "", t)
			local["run_id"] = runID
			sameOutputs(t, got, runLocal(t, local))
			planned := regexp.MustCompile(`msg="job planned".* run_id=` + runID + `.* mode=(\w+)`).FindStringSubmatch(sched.logs())
			if planned == nil || planned[1] != pat.mode {
				t.Errorf("job planned as %v, want %s", planned, pat.mode)
			}
			if !regexp.MustCompile(`msg="source split".* run_id=` + runID + `.* alias=left_src splits=2`).MatchString(sched.logs()) {
				t.Errorf("the invoices were not split into 2 stage tasks:\n%s", sched.logs())
			}
			if ops := stagingRequests(runID); ops["PutObject"] == 0 || ops["GetObject"] == 0 {
				t.Errorf("requests on the job's staging keys: %v; want staged files put and got", ops)
			}
			if keys := srv.Keys(t, "kalla", "staging/"); len(keys) != 0 {
				t.Errorf("staging objects left after the job: %q", keys)
			}
		})
	}

	t.Run("failed_job", func(t *testing.T) {
		// The binder accepts the cast; converting 'c7' fails at run time.
		job := patternJob(`SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
			WHERE CAST(i.customer AS INTEGER) > 0`, "s3://kalla/sources/invoices/", "s3://kalla/sources/payments.parquet", rv.base(), t)
		runID := job["run_id"].(string)
		if code, body := sched.submit(t, job); code != 202 {
			t.Fatalf("submit: %d %s", code, body)
		}
		var report kalla.ErrorReport
		if err := json.Unmarshal(rv.wait(t, "error", runID), &report); err != nil {
			t.Fatal(err)
		}
		if report.Stage != kalla.StageMatching || !strings.Contains(report.Error, "Conversion") {
			t.Errorf("error callback %+v", report)
		}
		if ops := stagingRequests(runID); ops["PutObject"] == 0 {
			t.Errorf("requests on the job's staging keys: %v; want staged files put", ops)
		}
		if keys := srv.Keys(t, "kalla", "staging/"); len(keys) != 0 {
			t.Errorf("staging objects left after the failed job: %q", keys)
		}
	})

	logs := map[string]string{"scheduler": sched.logs()}
	for i, e := range execs {
		logs[fmt.Sprintf("executor %d", i+1)] = e.logs()
		// The invoices are fetched in splits only: the plan reads their
		// footers, and no task fetches them whole.
		if regexp.MustCompile(`msg="s3 source fetched".* uri=s3://kalla/sources/invoices/`).MatchString(e.logs()) {
			t.Errorf("executor %d fetched the split invoices whole", i+1)
		}
	}
	if !regexp.MustCompile(`msg="s3 source split fetched".* uri=s3://kalla/sources/invoices/`).MatchString(execs[0].logs() + execs[1].logs()) {
		t.Error("no executor fetched a split of the invoices")
	}
	for name, l := range logs {
		for _, secret := range []string{srv.AccessKeyID, srv.SecretAccessKey} {
			if strings.Contains(l, secret) {
				t.Errorf("the %s's log shows a credential", name)
			}
		}
		if !strings.Contains(l, staging) {
			t.Errorf("the %s's log does not name the staging %s", name, staging)
		}
	}
}
