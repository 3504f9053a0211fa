package kallahttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// memStore is a kalla.JobStore in memory with the same revision rules as
// the JetStream one (which is tested in cluster/ and end to end in
// cmd/kallad).
type memStore struct {
	mu   sync.Mutex
	recs map[string]kalla.JobRecord
	rev  uint64
	// failGets makes Get fail as a store that does not answer would.
	failGets atomic.Bool
}

var _ kalla.JobStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{recs: map[string]kalla.JobRecord{}} }

func (m *memStore) Create(ctx context.Context, rec *kalla.JobRecord) (*kalla.JobRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.recs[rec.RunID]; ok {
		return clone(old), fmt.Errorf("create: %w", kalla.ErrJobExists)
	}
	m.rev++
	c := *clone(*rec)
	c.Revision = m.rev
	c.ListSeq = m.rev
	m.recs[rec.RunID] = c
	return clone(c), nil
}

func (m *memStore) Get(ctx context.Context, runID string) (*kalla.JobRecord, error) {
	if m.failGets.Load() {
		return nil, fmt.Errorf("get job %s: %w", runID, context.DeadlineExceeded)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[runID]
	if !ok {
		return nil, fmt.Errorf("get: %w", kalla.ErrJobNotFound)
	}
	return clone(rec), nil
}

func (m *memStore) List(ctx context.Context, limit int, after string) ([]*kalla.JobRecord, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	below := uint64(math.MaxUint64)
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("list: %w", kalla.ErrBadCursor)
		}
		below = n
	}
	var out []*kalla.JobRecord
	for _, r := range m.recs {
		if r.ListSeq < below {
			out = append(out, clone(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ListSeq > out[j].ListSeq })
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatUint(out[limit-1].ListSeq, 10)
	}
	return out, next, nil
}

func (m *memStore) Scan(ctx context.Context, fn func(*kalla.JobRecord) error) error {
	m.mu.Lock()
	var all []*kalla.JobRecord
	for _, r := range m.recs {
		all = append(all, clone(r))
	}
	m.mu.Unlock()
	for _, r := range all {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Update(ctx context.Context, rec *kalla.JobRecord) (*kalla.JobRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.recs[rec.RunID]
	if !ok {
		return nil, fmt.Errorf("update: %w", kalla.ErrJobNotFound)
	}
	if old.Revision != rec.Revision {
		return nil, fmt.Errorf("update: %w", kalla.ErrJobConflict)
	}
	m.rev++
	c := *clone(*rec)
	c.Revision = m.rev
	m.recs[rec.RunID] = c
	return clone(c), nil
}

// put stores rec as is, for tests that need a job in a given state.
func (m *memStore) put(rec kalla.JobRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	rec.Revision = m.rev
	if old, ok := m.recs[rec.RunID]; ok {
		rec.ListSeq = old.ListSeq
	} else {
		rec.ListSeq = m.rev
	}
	m.recs[rec.RunID] = *clone(rec)
}

// clone deep-copies through JSON, as a real store does.
func clone(r kalla.JobRecord) *kalla.JobRecord {
	data, _ := json.Marshal(r)
	var c kalla.JobRecord
	_ = json.Unmarshal(data, &c)
	c.Revision = r.Revision
	return &c
}

// memQueue records enqueued run ids.
type memQueue struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (q *memQueue) Enqueue(ctx context.Context, runID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.ids = append(q.ids, runID)
	return nil
}

func (q *memQueue) count(runID string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, id := range q.ids {
		if id == runID {
			n++
		}
	}
	return n
}

// finishedNotes records Finished calls.
type finishedNotes struct {
	mu  sync.Mutex
	ids []string
}

func (n *finishedNotes) Progress(string, kalla.Progress) {}
func (n *finishedNotes) Finished(runID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids = append(n.ids, runID)
}

type testBundle struct {
	server   *Server
	store    *memStore
	queue    *memQueue
	notes    *finishedNotes
	registry *prometheus.Registry
	url      string
}

// testRunner is a real kalla.Runner whose adapters open without I/O:
// "file" and "postgres" sources and "file" outputs.
func testRunner() *kalla.Runner {
	sources := kalla.NewSourceRegistry()
	sources.Register(func(ctx context.Context, uri string) (kalla.Source, error) {
		return file.NewSource(uri, kalla.FormatCSV), nil
	}, "file", "postgres")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(func(ctx context.Context, path string) (kalla.Output, error) { return nil, nil }, "file")
	return &kalla.Runner{Sources: sources, Outputs: outputs}
}

func setup(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	b := &testBundle{store: newMemStore(), queue: &memQueue{}, notes: &finishedNotes{}, registry: prometheus.NewRegistry()}
	cfg.Validator, cfg.Store, cfg.Queue, cfg.Notifier, cfg.Gatherer = testRunner(), b.store, b.queue, b.notes, b.registry
	cfg.Logger = kallatest.TestLogger(t, slog.LevelDebug)
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.MarkReady()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	b.server, b.url = srv, ts.URL
	return b
}

// validJob returns a job the test runner accepts.
func validJob() map[string]any {
	return map[string]any{
		"run_id":       kalla.NewRunID(),
		"callback_url": "http://receiver.invalid/cb",
		"match_sql":    "SELECT l.id AS left_src_id, r.id AS right_src_id FROM left_src l JOIN right_src r ON l.id = r.id",
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": "/data/left.csv"},
			map[string]any{"alias": "right_src", "uri": "postgres://u:p@h/db?table=payments",
				"filters": []any{map[string]any{"column": "amount", "op": "between", "value": []any{1, 100}}}},
		},
		"output_path":  "/tmp/out",
		"primary_keys": map[string]any{"left_src": []any{"id"}, "right_src": []any{"id"}},
	}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func do(t *testing.T, method, url, contentType, token string, body []byte, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode answer: %v", method, url, err)
		}
	}
	return resp
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kallatest.WaitFor(t, what, 20*time.Second, cond)
}

func httptestRecorder(s *Server, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}
