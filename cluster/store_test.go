package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

func TestStore(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	ctx := context.Background()
	now := time.Now().UTC()

	first := &kalla.JobRecord{RunID: kalla.NewRunID(), State: kalla.JobQueued, CreatedAt: now}
	created, err := b.store.Create(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if created.Revision == 0 {
		t.Fatal("Create set no revision")
	}

	t.Run("CreateExisting", func(t *testing.T) {
		dup := *first
		dup.State = kalla.JobRunning
		existing, err := b.store.Create(ctx, &dup)
		if !errors.Is(err, kalla.ErrJobExists) {
			t.Fatalf("err = %v, want ErrJobExists", err)
		}
		if existing == nil || existing.State != kalla.JobQueued {
			t.Fatalf("existing = %+v, want the stored queued record", existing)
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		for _, id := range []string{kalla.NewRunID(), "not a key!"} {
			if _, err := b.store.Get(ctx, id); !errors.Is(err, kalla.ErrJobNotFound) {
				t.Errorf("Get(%q) err = %v, want ErrJobNotFound", id, err)
			}
		}
	})

	t.Run("UpdateIsConditional", func(t *testing.T) {
		a, _ := b.store.Get(ctx, first.RunID)
		c, _ := b.store.Get(ctx, first.RunID)
		a.State = kalla.JobRunning
		if _, err := b.store.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		c.State = kalla.JobCancelled
		if _, err := b.store.Update(ctx, c); !errors.Is(err, kalla.ErrJobConflict) {
			t.Fatalf("stale update err = %v, want ErrJobConflict", err)
		}
		got, _ := b.store.Get(ctx, first.RunID)
		if got.State != kalla.JobRunning {
			t.Fatalf("state = %s, want running", got.State)
		}
	})

	t.Run("UpdateJobRetriesConflicts", func(t *testing.T) {
		calls := 0
		rec, err := kalla.UpdateJob(ctx, b.store, first.RunID, func(r *kalla.JobRecord) error {
			calls++
			if calls == 1 {
				// Another writer gets in between our read and write.
				other, _ := b.store.Get(ctx, first.RunID)
				other.CancelRequested = true
				if _, err := b.store.Update(ctx, other); err != nil {
					t.Fatal(err)
				}
			}
			r.Progress = &kalla.Progress{Stage: kalla.StageMatching}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls != 2 || !rec.CancelRequested || rec.Progress == nil {
			t.Fatalf("calls=%d rec=%+v: want the second call to keep both changes", calls, rec)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			r := &kalla.JobRecord{RunID: kalla.NewRunID(), State: kalla.JobQueued, CreatedAt: now.Add(time.Duration(i) * time.Second)}
			if _, err := b.store.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		all, next, err := b.store.List(ctx, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 || next != "" {
			t.Fatalf("List(10) returned %d records and next %q, want 4 and none", len(all), next)
		}
		two, next, err := b.store.List(ctx, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(two) != 2 || !two[0].CreatedAt.After(two[1].CreatedAt) || two[0].CreatedAt != all[0].CreatedAt || next == "" {
			t.Fatalf("List(2) = %v, %v, next %q: want the two newest, newest first, and a next cursor", two[0].CreatedAt, two[1].CreatedAt, next)
		}
		rest, last, err := b.store.List(ctx, 2, next)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) != 2 || rest[0].RunID != all[2].RunID || rest[1].RunID != all[3].RunID || last != "" {
			t.Fatalf("second page = %d records, next %q: want the two oldest and no next", len(rest), last)
		}
		seen := map[string]int{}
		if err := b.store.Scan(ctx, func(r *kalla.JobRecord) error { seen[r.RunID]++; return nil }); err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			if seen[r.RunID] != 1 {
				t.Fatalf("Scan saw %v, want each of the 4 records once", seen)
			}
		}
		stop := errors.New("stop")
		if err := b.store.Scan(ctx, func(*kalla.JobRecord) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("Scan err = %v, want fn's error", err)
		}
		for _, bad := range []string{"x", "0", "-1"} {
			if _, _, err := b.store.List(ctx, 2, bad); !errors.Is(err, kalla.ErrBadCursor) {
				t.Errorf("List(after=%q) err = %v, want ErrBadCursor", bad, err)
			}
		}
	})
}

func TestStoreSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	runID := b.submit(t, "")
	b.stop()
	b.start(t, QueueConfig{})
	rec, err := b.store.Get(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != kalla.JobQueued {
		t.Fatalf("state after restart = %s", rec.State)
	}
	st, err := b.queue.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 1 || st.OldestWait <= 0 {
		t.Fatalf("queue after restart = %+v, want the task still queued", st)
	}
}

// openStore opens another store on b's server with cfg.
func (b *testBundle) openStore(t *testing.T, cfg StoreConfig) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), b.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pages lists every record of s, limit at a time, and returns their run ids.
func pages(t *testing.T, s kalla.JobStore, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 1000 {
		recs, next, err := s.List(context.Background(), limit, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids = append(ids, r.RunID)
		}
		if next == "" {
			return ids
		}
		after = next
	}
	t.Fatal("List never returned an empty next")
	return nil
}

func TestStoreRetentionAndBound(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	ctx := context.Background()
	s := b.openStore(t, StoreConfig{Bucket: "BOUNDED", MaxRecords: 5, Retention: time.Hour})
	now := time.Now().UTC()
	old := now.Add(-2 * time.Hour)
	add := func(state kalla.JobState, created time.Time, finished *time.Time, callback string) string {
		t.Helper()
		rec := &kalla.JobRecord{RunID: kalla.NewRunID(), State: state, CreatedAt: created, FinishedAt: finished,
			Job: kalla.Job{CallbackURL: callback}}
		if _, err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return rec.RunID
	}
	running := add(kalla.JobRunning, old, nil, "")                    // old but running: kept
	expired := add(kalla.JobCompleted, old, &old, "")                 // ended 2h ago: removed by the sweep
	undelivered := add(kalla.JobFailed, now, &now, "http://cb.local") // callback pending: kept when full
	delivered := add(kalla.JobCompleted, now, &now, "")               // finished, nothing pending: evictable
	queued := add(kalla.JobQueued, now, nil, "")

	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep removed %d (err %v), want the expired record only", n, err)
	}
	if _, err := s.Get(ctx, expired); !errors.Is(err, kalla.ErrJobNotFound) {
		t.Fatalf("expired record still there: %v", err)
	}
	if got := pages(t, s, 2); !slices.Equal(got, []string{queued, delivered, undelivered, running}) {
		t.Fatalf("listed %v", got)
	}

	// At the bound, a new job takes the place of the oldest finished record
	// whose callback is delivered.
	add(kalla.JobQueued, now, nil, "")
	newest := add(kalla.JobQueued, now, nil, "")
	if _, err := s.Get(ctx, delivered); !errors.Is(err, kalla.ErrJobNotFound) {
		t.Fatalf("delivered record not evicted: %v", err)
	}
	// Now only queued, running and undelivered records are left: full.
	_, err = s.Create(ctx, &kalla.JobRecord{RunID: kalla.NewRunID(), State: kalla.JobQueued, CreatedAt: now})
	if !errors.Is(err, kalla.ErrStoreFull) {
		t.Fatalf("Create on a full store: %v, want ErrStoreFull", err)
	}
	for _, id := range []string{running, undelivered, queued, newest} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("record %s lost: %v", id, err)
		}
	}
	if got := pages(t, s, 3); len(got) != 5 || got[0] != newest {
		t.Fatalf("listed %v after eviction, want 5 records, newest first", got)
	}
}

// A bucket written before the list existed is listed when opened.
func TestStoreListsOldRecords(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	ctx := context.Background()
	// As the store made it before: a 7-day TTL, no list.
	kv, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LEGACY", History: 1, TTL: 7 * 24 * time.Hour, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	base := time.Now().UTC()
	for i := range 3 {
		id := kalla.NewRunID()
		data, _ := json.Marshal(kalla.JobRecord{RunID: id, State: kalla.JobCompleted, CreatedAt: base.Add(time.Duration(-i) * time.Minute)})
		if _, err := kv.Create(ctx, id, data); err != nil {
			t.Fatal(err)
		}
		want = append(want, id) // newest first
	}
	s := b.openStore(t, StoreConfig{Bucket: "LEGACY"})
	if got := pages(t, s, 2); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if st, err := kv.Status(ctx); err != nil || st.TTL() != 0 {
		t.Fatalf("bucket TTL after opening: %v (%v), want none: the sweep removes records", st.TTL(), err)
	}
	// Opening again lists nothing twice.
	s = b.openStore(t, StoreConfig{Bucket: "LEGACY"})
	if got := pages(t, s, 10); !slices.Equal(got, want) {
		t.Fatalf("listed %v after reopening, want %v", got, want)
	}
}
