package kallahttp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// dryRunner stands in for the engine in the HTTP layer's dry-run tests (the
// real one runs in cmd/kallad's process tests): run says what a dry run
// does; it records the jobs it got and the context's end.
type dryRunner struct {
	run     func(ctx context.Context, job *kalla.Job) (*kalla.Result, error)
	mu      sync.Mutex
	jobs    []*kalla.Job
	started chan struct{}
	ended   chan error
}

func newDryRunner(run func(ctx context.Context, job *kalla.Job) (*kalla.Result, error)) *dryRunner {
	return &dryRunner{run: run, started: make(chan struct{}, 10), ended: make(chan error, 10)}
}

func (d *dryRunner) DryRun(ctx context.Context, job *kalla.Job, _ func(kalla.Progress)) (*kalla.Result, error) {
	d.mu.Lock()
	d.jobs = append(d.jobs, job)
	d.mu.Unlock()
	d.started <- struct{}{}
	res, err := d.run(ctx, job)
	d.ended <- ctx.Err()
	return res, err
}

func (d *dryRunner) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs)
}

// counted returns a result with the job's run id, as the runner does.
func counted(_ context.Context, job *kalla.Job) (*kalla.Result, error) {
	if job.RunID == "" {
		job.RunID = kalla.NewRunID()
	}
	return &kalla.Result{RunID: job.RunID, MatchedCount: 7, DryRun: true,
		Rules: []kalla.RuleCount{{Name: "match", LeftIn: 9, RightIn: 8, Candidates: 7, Matched: 7}}}, nil
}

// slotCounter is a TakeSlot with n slots that counts the ones in use.
type slotCounter struct {
	free atomic.Int64
}

func newSlots(n int64) *slotCounter {
	s := &slotCounter{}
	s.free.Store(n)
	return s
}

func (s *slotCounter) take(context.Context) (func(), bool) {
	if s.free.Add(-1) < 0 {
		s.free.Add(1)
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { s.free.Add(1) }) }, true
}

// nothingKept fails t if the server stored, queued or finished anything.
func nothingKept(t *testing.T, b *testBundle) {
	t.Helper()
	recs, _, err := b.store.List(t.Context(), 10, "")
	if err != nil || len(recs) != 0 {
		t.Errorf("a dry run stored %d records (%v)", len(recs), err)
	}
	b.queue.mu.Lock()
	queued := len(b.queue.ids)
	b.queue.mu.Unlock()
	if queued != 0 {
		t.Errorf("a dry run queued %d tasks", queued)
	}
	b.notes.mu.Lock()
	finished := len(b.notes.ids)
	b.notes.mu.Unlock()
	if finished != 0 {
		t.Errorf("a dry run sent %d finished notes", finished)
	}
}

// dry_run=true answers the result at once and keeps nothing: the run id
// stays free for a real submission. run_id is optional.
func TestDryRunAnswersResultKeepsNothing(t *testing.T) {
	t.Parallel()
	runner := newDryRunner(counted)
	slots := newSlots(1)
	b := setup(t, Config{DryRuns: DryRuns{Runner: runner, TakeSlot: slots.take}})
	job := validJob()
	runID := job["run_id"].(string)
	for _, q := range []string{"true", "1"} {
		var res kalla.Result
		resp := do(t, "POST", b.url+"/api/jobs?dry_run="+q, "application/json", "", mustJSON(t, job), &res)
		if resp.StatusCode != 200 || res.RunID != runID || !res.DryRun || res.MatchedCount != 7 || len(res.Rules) != 1 {
			t.Fatalf("dry_run=%s: %d %+v", q, resp.StatusCode, res)
		}
	}
	if slots.free.Load() != 1 {
		t.Errorf("the dry runs did not give their slot back: %d free", slots.free.Load())
	}
	nothingKept(t, b)
	var list JobList
	do(t, "GET", b.url+"/api/jobs", "", "", nil, &list)
	if len(list.Jobs) != 0 {
		t.Errorf("GET /api/jobs lists %d jobs after dry runs", len(list.Jobs))
	}

	delete(job, "run_id")
	var res kalla.Result
	resp := do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, job), &res)
	if resp.StatusCode != 200 || res.RunID == "" || res.RunID == runID {
		t.Fatalf("dry run without run_id: %d %+v", resp.StatusCode, res)
	}
	var e ErrorBody
	resp = do(t, "POST", b.url+"/api/jobs?dry_run=false", "application/json", "", mustJSON(t, job), &e)
	if resp.StatusCode != 400 || e.Field != "run_id" {
		t.Fatalf("a real submission without run_id: %d %+v", resp.StatusCode, e)
	}

	// The dry run's run id is free.
	job["run_id"] = runID
	var acc Accepted
	resp = do(t, "POST", b.url+"/api/jobs?dry_run=0", "application/json", "", mustJSON(t, job), &acc)
	if resp.StatusCode != 202 || acc.RunID != runID || b.queue.count(runID) != 1 {
		t.Fatalf("real submission after dry runs: %d %+v, queued %d", resp.StatusCode, acc, b.queue.count(runID))
	}
}

// Any dry_run but true, false, 1 or 0 is a 400 naming dry_run, before the
// body is read; nothing runs.
func TestDryRunParamRefused(t *testing.T) {
	t.Parallel()
	runner := newDryRunner(counted)
	b := setup(t, Config{DryRuns: DryRuns{Runner: runner}})
	for _, q := range []string{"dry_run=yes", "dry_run=", "dry_run", "dry_run=TRUE", "dry_run=true&dry_run=false", "dry_run=2"} {
		var e ErrorBody
		resp := do(t, "POST", b.url+"/api/jobs?"+q, "application/json", "", mustJSON(t, validJob()), &e)
		if resp.StatusCode != 400 || e.Field != "dry_run" || e.Code != "invalid_query" || !strings.Contains(e.Error, "true, false, 1 or 0") {
			t.Errorf("?%s: %d %+v", q, resp.StatusCode, e)
		}
	}
	if runner.count() != 0 {
		t.Errorf("%d dry runs ran", runner.count())
	}
	nothingKept(t, b)
}

// A dry run is validated as a submission is: the same 400 for the same
// job, and the runner is not called.
func TestDryRunValidatesAsSubmit(t *testing.T) {
	t.Parallel()
	runner := newDryRunner(counted)
	b := setup(t, Config{DryRuns: DryRuns{Runner: runner}})
	bad := map[string]func(map[string]any){
		"no sources":          func(j map[string]any) { delete(j, "sources") },
		"bad scheme":          func(j map[string]any) { j["sources"].([]any)[0].(map[string]any)["uri"] = "ftp://h/x.csv" },
		"bad callback":        func(j map[string]any) { j["callback_url"] = "gopher://h" },
		"run_id not a UUID":   func(j map[string]any) { j["run_id"] = "abc" },
		"rules and match_sql": func(j map[string]any) { j["rules"] = []any{map[string]any{"name": "a", "match_sql": "SELECT 1"}} },
	}
	for name, mutate := range bad {
		job := validJob()
		mutate(job)
		var sub, dry ErrorBody
		r1 := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &sub)
		r2 := do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, job), &dry)
		if r1.StatusCode != 400 || r2.StatusCode != 400 || sub != dry {
			t.Errorf("%s: submit %d %+v, dry run %d %+v", name, r1.StatusCode, sub, r2.StatusCode, dry)
		}
	}
	var e ErrorBody
	if resp := do(t, "POST", b.url+"/api/jobs?dry_run=true", "text/plain", "", mustJSON(t, validJob()), &e); resp.StatusCode != 415 {
		t.Errorf("text/plain dry run: %d %+v", resp.StatusCode, e)
	}
	if runner.count() != 0 {
		t.Errorf("%d invalid dry runs ran", runner.count())
	}
}

// A dry run needs a job slot: with none free it gets 429 with Retry-After
// and does not run. A server without a dry runner answers 503.
func TestDryRunBusyAndUnavailable(t *testing.T) {
	t.Parallel()
	runner := newDryRunner(counted)
	b := setup(t, Config{DryRuns: DryRuns{Runner: runner, TakeSlot: newSlots(0).take}})
	var e ErrorBody
	resp := do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, validJob()), &e)
	if resp.StatusCode != 429 || e.Code != "busy" || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "--max-jobs") {
		t.Fatalf("no free slot: %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	if runner.count() != 0 {
		t.Errorf("ran without a slot")
	}
	nothingKept(t, b)

	b = setup(t, Config{})
	resp = do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, validJob()), &e)
	if resp.StatusCode != 503 || e.Field != "dry_run" {
		t.Fatalf("no dry runner: %d %+v", resp.StatusCode, e)
	}
	nothingKept(t, b)
}

// A failed dry run answers 422 with the stage and the error, its secrets
// masked; one that fails on what only running can tell (a bound rule)
// answers 400 naming the field.
func TestDryRunFailures(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-dryrun"
	job := validJob()
	job["sources"].([]any)[1].(map[string]any)["uri"] = "postgres://u:" + secret + "@h/db?table=payments"
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   ErrorBody
	}{
		{"staging", &kalla.StageError{Stage: kalla.StageStaging, Err: errors.New("read source \"right_src\": dial postgres://u:" + secret + "@h/db: refused")},
			422, ErrorBody{Code: "job_failed", Stage: kalla.StageStaging}},
		{"bound rule", &kalla.StageError{Stage: kalla.StageValidating, Err: kalla.Invalid("rules[1].exclusive.order_by[0]", "column %q is not returned", "gap")},
			400, ErrorBody{Code: "invalid_job", Field: "rules[1].exclusive.order_by[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runner := newDryRunner(func(context.Context, *kalla.Job) (*kalla.Result, error) { return nil, tc.err })
			b := setup(t, Config{DryRuns: DryRuns{Runner: runner}})
			var e ErrorBody
			resp := do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, job), &e)
			if resp.StatusCode != tc.status || e.Code != tc.want.Code || e.Field != tc.want.Field || e.Stage != tc.want.Stage || e.Error == "" {
				t.Fatalf("%d %+v, want %d %+v", resp.StatusCode, e, tc.status, tc.want)
			}
			if strings.Contains(e.Error, secret) {
				t.Errorf("the answer leaks the password: %s", e.Error)
			}
			nothingKept(t, b)
		})
	}
}

// The run stops when the client goes away, and gives its slot back.
func TestDryRunCancelledWhenClientLeaves(t *testing.T) {
	t.Parallel()
	runner := newDryRunner(func(ctx context.Context, _ *kalla.Job) (*kalla.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	slots := newSlots(1)
	b := setup(t, Config{DryRuns: DryRuns{Runner: runner, TakeSlot: slots.take}})
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "POST", b.url+"/api/jobs?dry_run=true", strings.NewReader(string(mustJSON(t, validJob()))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-runner.started
	cancel()
	select {
	case err := <-runner.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the run ended with %v, want its context cancelled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the dry run went on after its client left")
	}
	if err := <-errc; err == nil {
		t.Errorf("the cancelled request got an answer")
	}
	waitFor(t, "the slot given back", func() bool { return slots.free.Load() == 1 })
}

// A dry run may take longer than the server's read and write timeouts
// (which guard against slow clients): its context must not end with the
// read deadline, nor its answer be lost to the write deadline set when the
// request arrived.
func TestDryRunOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	runner := newDryRunner(func(ctx context.Context, job *kalla.Job) (*kalla.Result, error) {
		select {
		case <-time.After(4 * timeout):
			return counted(ctx, job)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	srv, err := NewServer(Config{Addr: "127.0.0.1:0", Validator: testRunner(), Store: newMemStore(), Queue: &memQueue{},
		Gatherer: prometheus.NewRegistry(), ReadTimeout: timeout, WriteTimeout: timeout,
		DryRuns: DryRuns{Runner: runner}, Logger: kallatest.TestLogger(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.MarkReady()
	var res kalla.Result
	resp := do(t, "POST", "http://"+srv.Addr()+"/api/jobs?dry_run=true", "application/json", "", mustJSON(t, validJob()), &res)
	if resp.StatusCode != 200 || !res.DryRun {
		t.Fatalf("a dry run longer than the server's timeouts: %d %+v", resp.StatusCode, res)
	}
	if err := <-runner.ended; err != nil {
		t.Errorf("the run's context ended: %v", err)
	}
}

// Stop returns only once the dry runs in flight have ended (the engine
// they use is closed right after): those still running when the shutdown
// timeout closes their connections are cancelled and waited for.
func TestDryRunStopWaitsForIt(t *testing.T) {
	t.Parallel()
	var finished atomic.Bool
	runner := newDryRunner(func(ctx context.Context, _ *kalla.Job) (*kalla.Result, error) {
		<-ctx.Done()
		// An engine takes a moment to stop a query.
		time.Sleep(300 * time.Millisecond)
		finished.Store(true)
		return nil, ctx.Err()
	})
	srv, err := NewServer(Config{Addr: "127.0.0.1:0", Validator: testRunner(), Store: newMemStore(), Queue: &memQueue{},
		Gatherer: prometheus.NewRegistry(), ShutdownTimeout: 100 * time.Millisecond,
		DryRuns: DryRuns{Runner: runner}, Logger: kallatest.TestLogger(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.MarkReady()
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+srv.Addr()+"/api/jobs?dry_run=true", "application/json", strings.NewReader(string(mustJSON(t, validJob()))))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-runner.started
	srv.Stop()
	if !finished.Load() {
		t.Fatal("Stop returned while a dry run was still running")
	}
	if err := <-errc; err == nil {
		t.Errorf("the dry run cut by the shutdown got an answer")
	}
}
