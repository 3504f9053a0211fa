package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

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
		all, err := b.store.List(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 {
			t.Fatalf("List(0) returned %d records, want 4", len(all))
		}
		two, err := b.store.List(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(two) != 2 || !two[0].CreatedAt.After(two[1].CreatedAt) || two[0].CreatedAt != all[0].CreatedAt {
			t.Fatalf("List(2) = %v, %v: want the two newest, newest first", two[0].CreatedAt, two[1].CreatedAt)
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
