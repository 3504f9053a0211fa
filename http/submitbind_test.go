package kallahttp

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// binderFunc is a Binder from a function. The real one (kalla.Runner with
// DuckDB, files and Postgres) is tested through the built kallad in
// cmd/kallad (scheduler_submitbind_test.go); these tests cover the
// answers the HTTP layer chooses.
type binderFunc func(ctx context.Context, job *kalla.Job) error

func (f binderFunc) CheckBind(ctx context.Context, job *kalla.Job, _ [2]kalla.Source) error {
	return f(ctx, job)
}

// A resubmission of a stored run is answered as one (200, or 409 for a
// different job) even when the check now fails: the job may have been
// accepted unchecked before.
func TestSubmitBindResubmission(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	b := setup(t, Config{SubmitBind: SubmitBind{Binder: binderFunc(func(context.Context, *kalla.Job) error {
		if fail.Load() {
			return kalla.Invalid("rules[1].exclusive.order_by[0]", "column %q is not returned", "gap")
		}
		return nil
	})}})
	job := validJob()
	var a Accepted
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &a); resp.StatusCode != 202 || a.ChecksDeferred != "" {
		t.Fatalf("submit: %d %+v", resp.StatusCode, a)
	}
	fail.Store(true)
	var v JobView
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &v); resp.StatusCode != 200 || v.RunID != job["run_id"] {
		t.Fatalf("resubmission failing the check: %d %+v, want 200 and the run", resp.StatusCode, v)
	}
	job["output_path"] = "/tmp/elsewhere"
	var e ErrorBody
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &e); resp.StatusCode != 409 || e.Field != "run_id" {
		t.Fatalf("a different job under the run id: %d %+v, want 409", resp.StatusCode, e)
	}
	other := validJob()
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, other), &e); resp.StatusCode != 400 || e.Field != "rules[1].exclusive.order_by[0]" || e.Code != "invalid_job" {
		t.Fatalf("a new job failing the check: %d %+v, want 400 on the field", resp.StatusCode, e)
	}
	if _, err := b.store.Get(t.Context(), other["run_id"].(string)); err == nil {
		t.Error("the refused job was stored")
	}
}

// A check that cannot finish in time, or start because every check is
// running, accepts the job unchecked and says why; a source error that is
// not the job's fault does too. The checks get the configured time.
func TestSubmitBindDeferred(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	b := setup(t, Config{SubmitBind: SubmitBind{Timeout: 300 * time.Millisecond, MaxConcurrent: 1,
		Binder: binderFunc(func(ctx context.Context, job *kalla.Job) error {
			if strings.Contains(job.OutputPath, "unreachable") {
				return &kalla.StageError{Stage: kalla.StageValidating, Err: context.DeadlineExceeded}
			}
			if strings.Contains(job.OutputPath, "hold") {
				// Holds the only check slot until the test ends, past
				// its own time.
				started <- struct{}{}
				<-release
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-release:
				return nil
			}
		})}})

	var a Accepted
	start := time.Now()
	resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, validJob()), &a)
	if resp.StatusCode != 202 || !strings.Contains(a.ChecksDeferred, "within 300ms") {
		t.Fatalf("a check past its time: %d %+v", resp.StatusCode, a)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("the check was cut after %s, before its 300ms", time.Since(start))
	}
	if _, err := b.store.Get(t.Context(), a.RunID); err != nil {
		t.Errorf("the job accepted unchecked is not stored: %v", err)
	}

	job := validJob()
	job["output_path"] = "/tmp/unreachable"
	resp = do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &a)
	if resp.StatusCode != 202 || !strings.Contains(a.ChecksDeferred, "deadline exceeded") {
		t.Fatalf("a source error: %d %+v", resp.StatusCode, a)
	}

	// One check holds the only slot (its client waits for it).
	hold := validJob()
	hold["output_path"] = "/tmp/hold"
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequest("POST", b.url+"/api/jobs", strings.NewReader(string(mustJSON(t, hold))))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	resp = do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, validJob()), &a)
	if resp.StatusCode != 202 || !strings.Contains(a.ChecksDeferred, "other submissions were being checked") {
		t.Errorf("no check slot free: %d %+v", resp.StatusCode, a)
	}
	close(release)
	<-held
}
