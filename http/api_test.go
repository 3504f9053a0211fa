package kallahttp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

func TestSubmitAcceptsAndQueues(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	job := validJob()
	runID := job["run_id"].(string)
	var acc Accepted
	resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &acc)
	if resp.StatusCode != http.StatusAccepted || acc.RunID != runID || acc.Status != "accepted" {
		t.Fatalf("answer %d %+v", resp.StatusCode, acc)
	}
	if b.queue.count(runID) != 1 {
		t.Fatalf("queued %d times", b.queue.count(runID))
	}
	var view JobView
	resp = do(t, "GET", b.url+"/api/jobs/"+runID, "", "", nil, &view)
	if resp.StatusCode != http.StatusOK || view.State != kalla.JobQueued || view.CreatedAt.IsZero() {
		t.Fatalf("GET answer %d %+v", resp.StatusCode, view)
	}
}

func TestResubmission(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	job := validJob()
	runID := job["run_id"].(string)
	do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), nil)

	// The job has run meanwhile.
	rec, _ := b.store.Get(t.Context(), runID)
	rec.State = kalla.JobCompleted
	rec.Result = &kalla.Result{RunID: runID, MatchedCount: 3}
	b.store.put(*rec)

	// Resubmitted with its filter written differently: the same job.
	body := bytes.Replace(mustJSON(t, job), []byte(`[1,100]`), []byte(`[ 1, 100 ]`), 1)
	var view JobView
	resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", body, &view)
	if resp.StatusCode != http.StatusOK || view.Status != kalla.JobCompleted || view.Result.MatchedCount != 3 {
		t.Fatalf("resubmission answer %d %+v", resp.StatusCode, view)
	}
	if b.queue.count(runID) != 1 {
		t.Fatalf("resubmitting a completed job queued it again (%d)", b.queue.count(runID))
	}

	job["match_sql"] = "SELECT 1"
	var e ErrorBody
	resp = do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &e)
	if resp.StatusCode != http.StatusConflict || e.Field != "run_id" || e.Code != "run_id_conflict" {
		t.Fatalf("different job under a known run_id: %d %+v", resp.StatusCode, e)
	}
}

// A job stored but not queued (the queue failed) is queued by resubmitting.
func TestResubmissionQueuesUnqueuedJob(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	job := validJob()
	runID := job["run_id"].(string)
	b.queue.err = errors.New("nats down")
	var e ErrorBody
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), &e); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("answer %d %+v", resp.StatusCode, e)
	}
	b.queue.err = nil
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, job), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("resubmission answer %d", resp.StatusCode)
	}
	if b.queue.count(runID) != 1 {
		t.Fatalf("queued %d times", b.queue.count(runID))
	}
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxBodyBytes: 4096})
	with := func(change func(j map[string]any)) []byte {
		j := validJob()
		change(j)
		return mustJSON(t, j)
	}
	source := func(j map[string]any, i int) map[string]any { return j["sources"].([]any)[i].(map[string]any) }
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		code, field       string
	}{
		{"no content type", "", with(func(map[string]any) {}), 415, "unsupported_media_type", ""},
		{"text content type", "text/plain", with(func(map[string]any) {}), 415, "unsupported_media_type", ""},
		{"body too large", "application/json", with(func(j map[string]any) { j["match_sql"] = strings.Repeat("x", 5000) }), 413, "body_too_large", ""},
		{"malformed JSON", "application/json", []byte(`{"run_id":`), 400, "invalid_job", ""},
		{"bad UUID", "application/json", with(func(j map[string]any) { j["run_id"] = "run-1" }), 400, "invalid_job", "run_id"},
		{"missing run_id", "application/json", with(func(j map[string]any) { delete(j, "run_id") }), 400, "invalid_job", "run_id"},
		{"missing match_sql", "application/json", with(func(j map[string]any) { delete(j, "match_sql") }), 400, "invalid_job", "match_sql"},
		{"missing output_path", "application/json", with(func(j map[string]any) { delete(j, "output_path") }), 400, "invalid_job", "output_path"},
		{"missing uri", "application/json", with(func(j map[string]any) { delete(source(j, 0), "uri") }), 400, "invalid_job", "sources[0].uri"},
		{"unknown field", "application/json", with(func(j map[string]any) { j["primary_key"] = 1 }), 400, "invalid_job", "primary_key"},
		{"unknown scheme", "application/json", with(func(j map[string]any) { source(j, 1)["uri"] = "ftp://h/x.csv" }), 400, "invalid_job", "sources[1].uri"},
		{"malformed filter", "application/json", with(func(j map[string]any) {
			source(j, 1)["filters"] = []any{map[string]any{"column": "amount", "op": "between", "value": 5}}
		}), 400, "invalid_job", "sources[1].filters[0].value"},
		{"unknown filter op", "application/json", with(func(j map[string]any) {
			source(j, 0)["filters"] = []any{map[string]any{"column": "amount", "op": "approx", "value": 5}}
		}), 400, "invalid_job", "sources[0].filters[0].op"},
		{"unknown primary-key alias", "application/json", with(func(j map[string]any) {
			j["primary_keys"].(map[string]any)["ledger"] = []any{"id"}
		}), 400, "invalid_job", "primary_keys.ledger"},
		{"bad callback_url", "application/json", with(func(j map[string]any) { j["callback_url"] = "receiver:9000" }), 400, "invalid_job", "callback_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e ErrorBody
			resp := do(t, "POST", b.url+"/api/jobs", tc.contentType, "", tc.body, &e)
			if resp.StatusCode != tc.status || e.Code != tc.code || e.Field != tc.field || e.Error == "" {
				t.Fatalf("answer %d %+v, want %d %s field %q", resp.StatusCode, e, tc.status, tc.code, tc.field)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if n := len(b.queue.ids); n != 0 {
		t.Fatalf("invalid jobs queued: %d", n)
	}
}

func TestGetAndListJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	var ids []string
	base := time.Now().UTC()
	for i := range 3 {
		j := validJob()
		ids = append(ids, j["run_id"].(string))
		do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, j), nil)
		// Distinct creation times, in submission order.
		rec, _ := b.store.Get(t.Context(), ids[i])
		rec.CreatedAt = base.Add(time.Duration(i) * time.Second)
		b.store.put(*rec)
	}
	var list struct{ Jobs []JobView }
	if resp := do(t, "GET", b.url+"/api/jobs?limit=2", "", "", nil, &list); resp.StatusCode != 200 {
		t.Fatalf("list answer %d", resp.StatusCode)
	}
	if len(list.Jobs) != 2 || list.Jobs[0].RunID != ids[2] || list.Jobs[1].RunID != ids[1] {
		t.Fatalf("list = %+v, want the two newest, newest first", list.Jobs)
	}
	for _, tc := range []struct {
		url    string
		status int
		code   string
	}{
		{"/api/jobs?limit=0", 400, "invalid_query"},
		{"/api/jobs/not-a-uuid", 400, "invalid_run_id"},
		{"/api/jobs/" + kalla.NewRunID(), 404, "not_found"},
		{"/api/nothing", 404, "no_such_route"},
	} {
		var e ErrorBody
		if resp := do(t, "GET", b.url+tc.url, "", "", nil, &e); resp.StatusCode != tc.status || e.Code != tc.code {
			t.Errorf("GET %s: %d %+v, want %d %s", tc.url, resp.StatusCode, e, tc.status, tc.code)
		}
	}
	var e ErrorBody
	if resp := do(t, "PUT", b.url+"/api/jobs", "", "", nil, &e); resp.StatusCode != 405 || e.Code != "method_not_allowed" || resp.Header.Get("Allow") == "" {
		t.Errorf("PUT /api/jobs: %d %+v", resp.StatusCode, e)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	submit := func() string {
		j := validJob()
		do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, j), nil)
		return j["run_id"].(string)
	}

	t.Run("Queued", func(t *testing.T) {
		runID := submit()
		var view JobView
		resp := do(t, "DELETE", b.url+"/api/jobs/"+runID, "", "", nil, &view)
		if resp.StatusCode != 200 || view.State != kalla.JobCancelled || view.Error.Stage != kalla.StageCancelled || view.Stage != kalla.StageCancelled {
			t.Fatalf("answer %d %+v", resp.StatusCode, view)
		}
		b.notes.mu.Lock()
		defer b.notes.mu.Unlock()
		if len(b.notes.ids) == 0 || b.notes.ids[len(b.notes.ids)-1] != runID {
			t.Fatal("the error callback of a cancelled queued job was not handed to the notifier")
		}
	})

	t.Run("Running", func(t *testing.T) {
		runID := submit()
		rec, _ := b.store.Get(t.Context(), runID)
		rec.State = kalla.JobRunning
		b.store.put(*rec)
		var view JobView
		resp := do(t, "DELETE", b.url+"/api/jobs/"+runID, "", "", nil, &view)
		if resp.StatusCode != 202 || view.State != kalla.JobRunning || !view.CancelRequested {
			t.Fatalf("answer %d %+v", resp.StatusCode, view)
		}
		// Asking again changes nothing.
		if resp := do(t, "DELETE", b.url+"/api/jobs/"+runID, "", "", nil, &view); resp.StatusCode != 202 {
			t.Fatalf("second cancel answer %d", resp.StatusCode)
		}
	})

	t.Run("Completed", func(t *testing.T) {
		runID := submit()
		rec, _ := b.store.Get(t.Context(), runID)
		rec.State = kalla.JobCompleted
		b.store.put(*rec)
		var e ErrorBody
		if resp := do(t, "DELETE", b.url+"/api/jobs/"+runID, "", "", nil, &e); resp.StatusCode != 409 || e.Code != "already_finished" {
			t.Fatalf("answer %d %+v", resp.StatusCode, e)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		var e ErrorBody
		if resp := do(t, "DELETE", b.url+"/api/jobs/"+kalla.NewRunID(), "", "", nil, &e); resp.StatusCode != 404 {
			t.Fatalf("answer %d %+v", resp.StatusCode, e)
		}
	})
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Token: "s3cret"})
	body := mustJSON(t, validJob())
	for _, token := range []string{"", "wrong", "s3cret-and-more"} {
		var e ErrorBody
		resp := do(t, "POST", b.url+"/api/jobs", "application/json", token, body, &e)
		if resp.StatusCode != 401 || e.Code != "unauthorized" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("token %q: %d %+v", token, resp.StatusCode, e)
		}
	}
	if resp := do(t, "GET", b.url+"/api/jobs", "", "", nil, nil); resp.StatusCode != 401 {
		t.Fatalf("list without token: %d", resp.StatusCode)
	}
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "s3cret", body, nil); resp.StatusCode != 202 {
		t.Fatalf("with token: %d", resp.StatusCode)
	}
	for _, path := range []string{"/health", "/ready", "/metrics", "/api/openapi.yaml"} {
		if resp := do(t, "GET", b.url+path, "", "", nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s without token: %d, want it open", path, resp.StatusCode)
		}
	}
}

// /ready says whether the scheduler can serve requests: a scheduler whose
// job slots are all taken is ready (200, "saturated": true), one that is
// starting, draining or cannot read its job store is not.
func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	var saturated atomic.Bool
	b := setup(t, Config{Saturated: saturated.Load})
	ready := func() (int, string, bool) {
		var st struct {
			Status    string
			Saturated *bool
		}
		resp := do(t, "GET", b.url+"/ready", "", "", nil, &st)
		if st.Saturated == nil {
			t.Fatalf("/ready %d %s: no saturated field", resp.StatusCode, st.Status)
		}
		return resp.StatusCode, st.Status, *st.Saturated
	}
	if code, st, sat := ready(); code != 200 || st != "ready" || sat {
		t.Fatalf("ready: %d %s saturated=%v", code, st, sat)
	}
	saturated.Store(true)
	if code, st, sat := ready(); code != 200 || st != "ready" || !sat {
		t.Fatalf("saturated: %d %s saturated=%v, want 200 ready saturated=true", code, st, sat)
	}
	b.store.failGets.Store(true)
	if code, st, _ := ready(); code != 503 || st != "store unreachable" {
		t.Fatalf("store failing: %d %s, want 503 store unreachable", code, st)
	}
	b.store.failGets.Store(false)
	if code, st, _ := ready(); code != 200 || st != "ready" {
		t.Fatalf("store back: %d %s", code, st)
	}
	saturated.Store(false)
	b.server.Drain()
	if code, st, _ := ready(); code != 503 || st != "draining" {
		t.Fatalf("draining: %d %s", code, st)
	}
	if resp := do(t, "GET", b.url+"/health", "", "", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("health while draining: %d", resp.StatusCode)
	}

	starting, err := NewServer(Config{Validator: testRunner(), Store: newMemStore(), Queue: &memQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptestRecorder(starting, "/ready")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "starting") {
		t.Fatalf("starting: %d %s", rec.Code, rec.Body)
	}
}

// Paging GET /api/jobs returns every run once, newest first, and says which
// parameter is malformed.
func TestListJobsPages(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	var ids []string
	for range 7 {
		j := validJob()
		ids = append(ids, j["run_id"].(string))
		if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, j), nil); resp.StatusCode != 202 {
			t.Fatalf("submit answer %d", resp.StatusCode)
		}
	}
	slices.Reverse(ids)
	var got []string
	url := b.url + "/api/jobs?limit=3"
	for range 10 {
		var page JobList
		if resp := do(t, "GET", url, "", "", nil, &page); resp.StatusCode != 200 {
			t.Fatalf("GET %s answer %d", url, resp.StatusCode)
		}
		for _, v := range page.Jobs {
			got = append(got, v.RunID)
		}
		if page.Next == nil {
			break
		}
		url = b.url + "/api/jobs?limit=3&after=" + *page.Next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("pages listed %v, want %v", got, ids)
	}
	for _, tc := range []struct{ query, field string }{
		{"limit=abc", "limit"}, {"limit=1001", "limit"}, {"limit=", "limit"}, {"limit=-1", "limit"},
		{"after=", "after"}, {"after=nope", "after"},
	} {
		var e ErrorBody
		if resp := do(t, "GET", b.url+"/api/jobs?"+tc.query, "", "", nil, &e); resp.StatusCode != 400 || e.Field != tc.field || e.Code != "invalid_query" {
			t.Errorf("GET /api/jobs?%s: %d %+v, want 400 naming %s", tc.query, resp.StatusCode, e, tc.field)
		}
	}
}

// With MaxQueued jobs waiting a new job gets 429 with Retry-After, while a
// known run_id still gets its usual answer.
func TestSubmitQueueFull(t *testing.T) {
	t.Parallel()
	var depth atomic.Int64
	b := setup(t, Config{MaxQueued: 2, QueueDepth: func(context.Context) (int, error) { return int(depth.Load()), nil }})
	first := validJob()
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, first), nil); resp.StatusCode != 202 {
		t.Fatalf("first submit answer %d", resp.StatusCode)
	}
	depth.Store(2)
	var e ErrorBody
	resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, validJob()), &e)
	if resp.StatusCode != 429 || e.Code != "queue_full" || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "--max-queued 2") {
		t.Fatalf("submit to a full queue: %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	var view JobView
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, first), &view); resp.StatusCode != 200 || view.RunID != first["run_id"] {
		t.Fatalf("resubmission to a full queue: %d %+v, want 200 and the run", resp.StatusCode, view)
	}
	first["output_path"] = "/tmp/other"
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, first), &e); resp.StatusCode != 409 {
		t.Fatalf("changed resubmission to a full queue: %d, want 409", resp.StatusCode)
	}
	depth.Store(1)
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", mustJSON(t, validJob()), nil); resp.StatusCode != 202 {
		t.Fatalf("submit below the bound answer %d", resp.StatusCode)
	}
}
