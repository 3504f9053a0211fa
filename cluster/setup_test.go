package cluster

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

type testBundle struct {
	dataDir string
	server  *Server
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *Store
	queue   *Queue
	logger  *slog.Logger
}

// setup starts an embedded NATS server on a fresh data dir and opens the
// store and the queue on it.
func setup(t *testing.T, qcfg QueueConfig) *testBundle {
	t.Helper()
	b := &testBundle{dataDir: t.TempDir(), logger: testLogger(t)}
	b.start(t, qcfg)
	return b
}

// start (re)starts the server on b.dataDir, as a restarted scheduler would.
func (b *testBundle) start(t *testing.T, qcfg QueueConfig) {
	t.Helper()
	srv, err := NewServer(ServerConfig{DataDir: b.dataDir, Host: "127.0.0.1", Port: -1, Logger: b.logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	js, err := JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := OpenStore(ctx, js, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	queue, err := OpenQueue(ctx, js, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	b.server, b.nc, b.js, b.store, b.queue = srv, nc, js, store, queue
	t.Cleanup(b.stop)
}

// stop shuts the server down, as a crashed scheduler's would vanish.
func (b *testBundle) stop() {
	if b.nc != nil {
		b.nc.Close()
		b.nc = nil
	}
	if b.server != nil {
		b.server.Stop()
		b.server = nil
	}
}

func testLogger(t *testing.T) *slog.Logger { return kallatest.TestLogger(t, slog.LevelInfo) }

// submit stores a queued record for a new run and enqueues it, as the HTTP
// API does.
func (b *testBundle) submit(t *testing.T, callbackURL string) string {
	t.Helper()
	runID := kalla.NewRunID()
	now := time.Now().UTC()
	rec := &kalla.JobRecord{
		RunID: runID, State: kalla.JobQueued, CreatedAt: now, UpdatedAt: now,
		Job: kalla.Job{RunID: runID, CallbackURL: callbackURL, MatchSQL: "select 1", OutputPath: "/tmp/x"},
	}
	ctx := context.Background()
	if _, err := b.store.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := b.queue.Enqueue(ctx, runID); err != nil {
		t.Fatal(err)
	}
	return runID
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kallatest.WaitFor(t, what, 20*time.Second, cond)
}

// waitState polls the record of runID until it reaches state.
func (b *testBundle) waitState(t *testing.T, runID string, state kalla.JobState) *kalla.JobRecord {
	t.Helper()
	var rec *kalla.JobRecord
	waitFor(t, "job "+runID+" "+string(state), func() bool {
		var err error
		rec, err = b.store.Get(context.Background(), runID)
		return err == nil && rec.State == state
	})
	return rec
}

// fakeRunner runs jobs by calling fn; it counts runs per run id.
type fakeRunner struct {
	mu   sync.Mutex
	runs map[string]int
	fn   func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error)
}

func (r *fakeRunner) Run(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
	r.mu.Lock()
	if r.runs == nil {
		r.runs = map[string]int{}
	}
	r.runs[job.RunID]++
	r.mu.Unlock()
	return r.fn(ctx, job, progress)
}

func (r *fakeRunner) count(runID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[runID]
}

func succeed(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
	progress(kalla.Progress{Stage: kalla.StageStaging})
	progress(kalla.Progress{Stage: kalla.StageMatching})
	return &kalla.Result{RunID: job.RunID, MatchedCount: 7, LeftCount: 10, RightCount: 9}, nil
}

// blockUntilCancelled reports staging progress then waits for ctx, as a long
// DuckDB query does.
func blockUntilCancelled(started chan<- string) func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
	return func(ctx context.Context, job *kalla.Job, progress func(kalla.Progress)) (*kalla.Result, error) {
		progress(kalla.Progress{Stage: kalla.StageStaging, Progress: 0.5})
		if started != nil {
			started <- job.RunID
		}
		<-ctx.Done()
		return nil, &kalla.StageError{Stage: kalla.StageCancelled, Err: kalla.ErrCancelled}
	}
}

// recNotifier records what a worker notifies.
type recNotifier struct {
	mu       sync.Mutex
	progress []kalla.Progress
	finished map[string]int
}

func (n *recNotifier) Progress(url string, p kalla.Progress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.progress = append(n.progress, p)
}

func (n *recNotifier) Finished(runID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.finished == nil {
		n.finished = map[string]int{}
	}
	n.finished[runID]++
}

func (n *recNotifier) finishedCount(runID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.finished[runID]
}

func (n *recNotifier) progressCount(runID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, p := range n.progress {
		if p.RunID == runID {
			c++
		}
	}
	return c
}

func (b *testBundle) worker(t *testing.T, cfg WorkerConfig) *Worker {
	t.Helper()
	cfg.Store, cfg.Queue, cfg.Logger = b.store, b.queue, b.logger
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 200 * time.Millisecond
	}
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}
