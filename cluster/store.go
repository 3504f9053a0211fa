package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

// StoreConfig configures the job store bucket.
type StoreConfig struct {
	// Bucket is the key-value bucket's name.
	Bucket string
	// TTL is how long a record is kept after its last update; 0 keeps
	// records for 7 days.
	TTL time.Duration
	// Replicas is the bucket's replication factor on a NATS cluster.
	Replicas int
}

func (c *StoreConfig) validate() error {
	if c.Bucket == "" {
		c.Bucket = "KALLA_JOBS"
	}
	if c.TTL == 0 {
		c.TTL = 7 * 24 * time.Hour
	}
	if c.TTL < 0 {
		return fmt.Errorf("store config: negative TTL %s", c.TTL)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return nil
}

// Store is a kalla.JobStore on a JetStream key-value bucket: one key per run
// id, whose revision makes updates conditional.
type Store struct {
	kv jetstream.KeyValue
}

var _ kalla.JobStore = (*Store)(nil)

// OpenStore creates or updates the bucket and returns the store.
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Kalla job records, keyed by run id",
		History:     1,
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open job store bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Create implements kalla.JobStore.
func (s *Store) Create(ctx context.Context, rec *kalla.JobRecord) (*kalla.JobRecord, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", rec.RunID, err)
	}
	rev, err := s.kv.Create(ctx, rec.RunID, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		existing, gerr := s.Get(ctx, rec.RunID)
		if gerr != nil {
			return nil, gerr
		}
		return existing, fmt.Errorf("create job %s: %w", rec.RunID, kalla.ErrJobExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create job %s: %w", rec.RunID, translate(err))
	}
	out := *rec
	out.Revision = rev
	return &out, nil
}

// Get implements kalla.JobStore.
func (s *Store) Get(ctx context.Context, runID string) (*kalla.JobRecord, error) {
	e, err := s.kv.Get(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", runID, translate(err))
	}
	return decodeRecord(e)
}

// List implements kalla.JobStore; limit <= 0 returns every record.
func (s *Store) List(ctx context.Context, limit int) ([]*kalla.JobRecord, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", translate(err))
	}
	defer w.Stop()
	var recs []*kalla.JobRecord
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list jobs: watcher closed")
			}
			if e == nil { // all current values have been delivered
				sort.Slice(recs, func(i, j int) bool { return recs[i].CreatedAt.After(recs[j].CreatedAt) })
				if limit > 0 && len(recs) > limit {
					recs = recs[:limit]
				}
				return recs, nil
			}
			rec, err := decodeRecord(e)
			if err != nil {
				return nil, err
			}
			recs = append(recs, rec)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Update implements kalla.JobStore.
func (s *Store) Update(ctx context.Context, rec *kalla.JobRecord) (*kalla.JobRecord, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", rec.RunID, err)
	}
	rev, err := s.kv.Update(ctx, rec.RunID, data, rec.Revision)
	if err != nil {
		return nil, fmt.Errorf("update job %s: %w", rec.RunID, translate(err))
	}
	out := *rec
	out.Revision = rev
	return &out, nil
}

// Watch calls fn with the record of runID now and after every change until
// ctx is done. It is how a runner learns of a cancel request at once.
func (s *Store) Watch(ctx context.Context, runID string, fn func(*kalla.JobRecord)) error {
	w, err := s.kv.Watch(ctx, runID, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch job %s: %w", runID, translate(err))
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			if rec, err := decodeRecord(e); err == nil {
				fn(rec)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func decodeRecord(e jetstream.KeyValueEntry) (*kalla.JobRecord, error) {
	var rec kalla.JobRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", e.Key(), err)
	}
	rec.Revision = e.Revision()
	return &rec, nil
}

// translate maps JetStream's key-value errors onto the kalla.JobStore ones.
func translate(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w (%w)", kalla.ErrJobConflict, err)
	case errors.Is(err, jetstream.ErrKeyExists):
		// Update reports a stale revision with the same code as Create's
		// "exists".
		return fmt.Errorf("%w (%w)", kalla.ErrJobConflict, err)
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted), errors.Is(err, jetstream.ErrInvalidKey):
		return fmt.Errorf("%w (%w)", kalla.ErrJobNotFound, err)
	}
	return err
}
