package kallahttp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// receiver is a callback receiver: it records every POST by path and answers
// with answer(path, n), n counting that path's requests from 1.
type receiver struct {
	mu     sync.Mutex
	bodies map[string][]json.RawMessage
	answer func(path string, n int) int
	// gate, if not nil, holds every request until it is closed.
	gate chan struct{}
	// entered, if not nil, receives the path of every request on arrival,
	// before the gate.
	entered chan string
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rv.entered != nil {
		rv.entered <- r.URL.Path
	}
	if rv.gate != nil {
		<-rv.gate
	}
	body, _ := io.ReadAll(r.Body)
	rv.mu.Lock()
	if rv.bodies == nil {
		rv.bodies = map[string][]json.RawMessage{}
	}
	rv.bodies[r.URL.Path] = append(rv.bodies[r.URL.Path], body)
	n := len(rv.bodies[r.URL.Path])
	rv.mu.Unlock()
	status := http.StatusOK
	if rv.answer != nil {
		status = rv.answer(r.URL.Path, n)
	}
	w.WriteHeader(status)
}

func (rv *receiver) got(path string) []json.RawMessage {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]json.RawMessage(nil), rv.bodies[path]...)
}

func startSender(t *testing.T, store kalla.JobStore) *CallbackSender {
	t.Helper()
	s, err := NewCallbackSender(CallbackConfig{
		Store: store, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		SweepInterval: time.Hour, FlushTimeout: 100 * time.Millisecond, Logger: kallatest.TestLogger(t, slog.LevelDebug),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// finalRecord stores a job that ended in state with the given callback base.
func finalRecord(store *memStore, base string, state kalla.JobState) string {
	runID := kalla.NewRunID()
	rec := kalla.JobRecord{RunID: runID, State: state, Job: kalla.Job{RunID: runID, CallbackURL: base}, CreatedAt: time.Now()}
	switch state {
	case kalla.JobCompleted:
		rec.Result = &kalla.Result{RunID: runID, MatchedCount: 5, LeftCount: 6, RightCount: 7,
			OutputPaths: kalla.OutputPaths{Matched: "/o/matched.parquet"}}
	default:
		rec.Error = &kalla.ErrorReport{RunID: runID, Stage: kalla.StageMatching, Error: "boom"}
	}
	store.put(rec)
	return runID
}

// runningRecord stores a running job with the given callback base: the
// sweep at start leaves it alone. finish makes it final as state.
func runningRecord(store *memStore, base string) *kalla.JobRecord {
	runID := finalRecord(store, base, kalla.JobCompleted)
	rec, _ := store.Get(context.Background(), runID)
	rec.State = kalla.JobRunning
	store.put(*rec)
	return rec
}

func finish(store *memStore, rec *kalla.JobRecord) {
	rec.State = kalla.JobCompleted
	store.put(*rec)
}

func delivered(t *testing.T, store *memStore, runID string) kalla.CallbackDelivery {
	t.Helper()
	var cb kalla.CallbackDelivery
	waitFor(t, "callback of "+runID+" recorded as delivered", func() bool {
		rec, err := store.Get(context.Background(), runID)
		cb = rec.Callback
		return err == nil && cb.Delivered
	})
	return cb
}

func TestCallbacksProgressThenCompleteOnce(t *testing.T) {
	t.Parallel()
	rv := &receiver{}
	ts := httptest.NewServer(rv)
	defer ts.Close()
	store := newMemStore()
	base := ts.URL + "/hooks/"
	rec := runningRecord(store, base)
	runID := rec.RunID
	s := startSender(t, store)

	s.Progress(base, kalla.Progress{RunID: runID, Stage: kalla.StageStaging, Progress: 0.5})
	finish(store, rec)
	s.Finished(runID)
	cb := delivered(t, store, runID)
	if cb.Status != 200 || cb.Tries != 1 || cb.DeliveredAt == nil {
		t.Fatalf("delivery = %+v", cb)
	}
	progress, complete := rv.got("/hooks/progress"), rv.got("/hooks/complete")
	if len(progress) != 1 || len(complete) != 1 {
		t.Fatalf("got %d progress and %d complete callbacks", len(progress), len(complete))
	}
	var res kalla.Result
	if err := json.Unmarshal(complete[0], &res); err != nil || res.RunID != runID || res.MatchedCount != 5 || res.OutputPaths.Matched != "/o/matched.parquet" {
		t.Fatalf("complete payload %s", complete[0])
	}
	// Telling it again (a redelivered task, a sweep) sends nothing more.
	s.Finished(runID)
	waitFor(t, "sender idle", func() bool { return s.pending() == 0 })
	if n := len(rv.got("/hooks/complete")); n != 1 {
		t.Fatalf("complete sent %d times", n)
	}
}

func TestCallbacksErrorOnceAnd4xxNotRetried(t *testing.T) {
	t.Parallel()
	rv := &receiver{answer: func(path string, n int) int { return http.StatusGone }}
	ts := httptest.NewServer(rv)
	defer ts.Close()
	store := newMemStore()
	s := startSender(t, store)
	runID := finalRecord(store, ts.URL, kalla.JobFailed)
	s.Finished(runID)
	cb := delivered(t, store, runID)
	if cb.Status != http.StatusGone || cb.Tries != 1 {
		t.Fatalf("delivery = %+v", cb)
	}
	got := rv.got("/error")
	var rep kalla.ErrorReport
	if len(got) != 1 || json.Unmarshal(got[0], &rep) != nil || rep.Stage != kalla.StageMatching || rep.Error != "boom" {
		t.Fatalf("error callbacks %s", got)
	}
}

// A receiver that is down (connection refused, then 503) and comes back
// gets the complete callback once.
func TestCallbacksReceiverDownComesBack(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused

	store := newMemStore()
	s := startSender(t, store)
	runID := finalRecord(store, "http://"+addr, kalla.JobCompleted)
	s.Finished(runID)
	waitFor(t, "failed tries recorded", func() bool {
		rec, _ := store.Get(context.Background(), runID)
		return rec.Callback.Tries >= 2 && rec.Callback.LastError != ""
	})

	rv := &receiver{answer: func(path string, n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rv}}
	ts.Start()
	defer ts.Close()

	cb := delivered(t, store, runID)
	if cb.Status != 200 || cb.Tries < 5 {
		t.Fatalf("delivery = %+v, want 200 after the refused and 503 tries", cb)
	}
	if n := len(rv.got("/complete")); n != 3 {
		t.Fatalf("receiver saw %d complete callbacks, want 2 answered 503 and 1 accepted", n)
	}
}

// Final callbacks left undelivered by a previous process are sent at start.
func TestCallbacksSweepAtStart(t *testing.T) {
	t.Parallel()
	rv := &receiver{}
	ts := httptest.NewServer(rv)
	defer ts.Close()
	store := newMemStore()
	runID := finalRecord(store, ts.URL, kalla.JobCancelled)
	done := finalRecord(store, ts.URL, kalla.JobCompleted)
	rec, _ := store.Get(context.Background(), done)
	rec.Callback.Delivered = true
	store.put(*rec)

	startSender(t, store)
	delivered(t, store, runID)
	if n, m := len(rv.got("/error")), len(rv.got("/complete")); n != 1 || m != 0 {
		t.Fatalf("sent %d error and %d complete callbacks, want only the undelivered one", n, m)
	}
}

// A receiver that does not answer never blocks the notifier, and progress
// piles up as one latest report per run.
func TestCallbacksSlowReceiverCoalesces(t *testing.T) {
	t.Parallel()
	rv := &receiver{gate: make(chan struct{})}
	ts := httptest.NewServer(rv)
	defer ts.Close()
	store := newMemStore()
	s := startSender(t, store)
	runID := finalRecord(store, ts.URL, kalla.JobCompleted)
	for i := 1; i <= 200; i++ {
		s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageMatching, Progress: float64(i) / 200})
	}
	s.Finished(runID)
	close(rv.gate)
	delivered(t, store, runID)
	progress := rv.got("/progress")
	if len(progress) > 3 {
		t.Fatalf("sent %d progress callbacks for 200 reports to a stalled receiver; want them coalesced", len(progress))
	}
	var last kalla.Progress
	if err := json.Unmarshal(progress[len(progress)-1], &last); err != nil || last.Progress != 1 {
		t.Fatalf("last progress %s, want the latest report", progress[len(progress)-1])
	}
}

// A stage that ends while the receiver is still busy with the previous
// stage's report keeps its own report: coalescing happens only within a
// stage. (TestSchedulerEndToEnd once got no "matching" callback: its report
// had been replaced by the "writing_results" one.)
func TestCallbacksFastStageNotLost(t *testing.T) {
	t.Parallel()
	rv := &receiver{gate: make(chan struct{}), entered: make(chan string, 16)}
	ts := httptest.NewServer(rv)
	defer ts.Close()
	var open sync.Once
	defer open.Do(func() { close(rv.gate) })
	store := newMemStore()
	rec := runningRecord(store, ts.URL)
	runID := rec.RunID
	s := startSender(t, store)

	s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageStaging, Progress: 0})
	if path := <-rv.entered; path != "/progress" {
		t.Fatalf("first request to %s, want /progress", path)
	}
	// The receiver now holds the staging report; the next two stages
	// report while it does.
	for i := 1; i <= 3; i++ {
		s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageStaging, Progress: float64(i) / 3})
	}
	for i := 0; i <= 4; i++ {
		s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageMatching, Progress: float64(i) / 4})
	}
	s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageWriting, Progress: 0})
	s.Progress(ts.URL, kalla.Progress{RunID: runID, Stage: kalla.StageWriting, Progress: 1})
	finish(store, rec)
	s.Finished(runID)
	open.Do(func() { close(rv.gate) })
	delivered(t, store, runID)

	type sent struct {
		Stage    kalla.Stage
		Progress float64
	}
	var got []sent
	for _, body := range rv.got("/progress") {
		var p kalla.Progress
		if err := json.Unmarshal(body, &p); err != nil || p.RunID != runID {
			t.Fatalf("progress payload %s", body)
		}
		got = append(got, sent{p.Stage, p.Progress})
	}
	want := []sent{{kalla.StageStaging, 0}, {kalla.StageStaging, 1}, {kalla.StageMatching, 1}, {kalla.StageWriting, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("progress callbacks %v, want %v: the first in flight, then the latest of each stage, in order", got, want)
	}
	if n := len(rv.got("/complete")); n != 1 {
		t.Fatalf("complete sent %d times", n)
	}
}

// A receiver that never answers holds at most MaxPendingPerHost runs: the
// progress of more runs to it is dropped, other receivers are served
// meanwhile, and every final callback is still delivered once, from the
// store, when it answers again.
func TestCallbacksBoundPerHost(t *testing.T) {
	t.Parallel()
	stuck := &receiver{gate: make(chan struct{}), entered: make(chan string, 64)}
	tsStuck := httptest.NewServer(stuck)
	defer tsStuck.Close()
	var open sync.Once
	defer open.Do(func() { close(stuck.gate) })
	other := &receiver{}
	tsOther := httptest.NewServer(other)
	defer tsOther.Close()

	store := newMemStore()
	s, err := NewCallbackSender(CallbackConfig{
		Store: store, MaxPendingPerHost: 2, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		SweepInterval: 50 * time.Millisecond, FlushTimeout: 100 * time.Millisecond, Logger: kallatest.TestLogger(t, slog.LevelDebug),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	var stuckRuns []*kalla.JobRecord
	for range 4 {
		rec := runningRecord(store, tsStuck.URL)
		stuckRuns = append(stuckRuns, rec)
		s.Progress(tsStuck.URL, kalla.Progress{RunID: rec.RunID, Stage: kalla.StageStaging})
	}
	<-stuck.entered
	<-stuck.entered // both runs it may hold are at the stalled receiver
	s.mu.Lock()
	held, runs := s.hosts[callbackHost(tsStuck.URL)], len(s.runs)
	s.mu.Unlock()
	if held != 2 || runs != 2 {
		t.Fatalf("pending for the stalled host: %d (runs %d), want 2", held, runs)
	}

	// Another receiver is served while the first one stalls.
	otherRun := runningRecord(store, tsOther.URL)
	s.Progress(tsOther.URL, kalla.Progress{RunID: otherRun.RunID, Stage: kalla.StageStaging})
	finish(store, otherRun)
	s.Finished(otherRun.RunID)
	delivered(t, store, otherRun.RunID)

	for _, rec := range stuckRuns {
		finish(store, rec)
		s.Finished(rec.RunID)
	}
	s.mu.Lock()
	held = s.hosts[callbackHost(tsStuck.URL)]
	s.mu.Unlock()
	if held != 2 {
		t.Fatalf("pending for the stalled host after the final callbacks: %d, want still 2", held)
	}
	open.Do(func() { close(stuck.gate) })
	for _, rec := range stuckRuns {
		delivered(t, store, rec.RunID)
	}
	if n := len(stuck.got("/progress")); n != 2 {
		t.Fatalf("stalled receiver got %d progress reports, want the 2 it held", n)
	}
	waitFor(t, "sender idle", func() bool { return s.pending() == 0 })
	complete := map[string]int{}
	for _, body := range stuck.got("/complete") {
		var res kalla.Result
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		complete[res.RunID]++
	}
	for _, rec := range stuckRuns {
		if complete[rec.RunID] != 1 {
			t.Fatalf("complete callbacks per run %v, want each run once", complete)
		}
	}
}
