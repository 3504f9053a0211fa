package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

// StoreConfig configures the job store bucket.
type StoreConfig struct {
	// Bucket is the key-value bucket's name; the list of its records is the
	// stream Bucket+"_LIST".
	Bucket string
	// Retention is how long a finished job's record is kept after the job
	// ended; queued and running jobs' records are never removed. Default 7
	// days.
	Retention time.Duration
	// MaxRecords bounds the records kept. At the bound, Create removes the
	// oldest finished records whose callback is delivered, or, when there
	// are none, fails with kalla.ErrStoreFull. Default 100000.
	MaxRecords int
	// Replicas is the replication factor of the bucket and its list on a
	// NATS cluster: 3 survives the loss of one server. Default 1.
	Replicas int
}

func (c *StoreConfig) validate() error {
	if c.Bucket == "" {
		c.Bucket = "KALLA_JOBS"
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 100_000
	}
	switch {
	case c.Retention < 0:
		return fmt.Errorf("store config: negative Retention %s", c.Retention)
	case c.MaxRecords < 0:
		return fmt.Errorf("store config: negative MaxRecords %d", c.MaxRecords)
	}
	return checkReplicas("store", &c.Replicas)
}

// Store is a kalla.JobStore on a JetStream key-value bucket: one key per run
// id, whose revision makes updates conditional. A second stream lists the
// run ids in creation order, one message each, so that List reads one page
// (newest first, from the stream's end) and the sweep removes the oldest
// records first without reading them all.
type Store struct {
	cfg     StoreConfig
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	records jetstream.Stream // the bucket's own stream, to purge a key
	list    jetstream.Stream
	subject string
}

var _ kalla.JobStore = (*Store)(nil)

// OpenStore creates or updates the bucket and its list and returns the
// store. Records of a store made before the list existed are listed once.
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Kalla job records, keyed by run id",
		History:     1,
		// No TTL: records are removed by the sweep, which never removes a
		// queued or running job's record (a TTL counts from the last update
		// and would).
		Storage:  jetstream.FileStorage,
		Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open job store bucket %s: %w", cfg.Bucket, err)
	}
	records, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open job store bucket %s: %w", cfg.Bucket, err)
	}
	if cfg.Replicas > 1 {
		if kv, records, err = leaderReads(ctx, js, records); err != nil {
			return nil, fmt.Errorf("open job store bucket %s: %w", cfg.Bucket, err)
		}
	}
	s := &Store{cfg: cfg, js: js, kv: kv, records: records, subject: "kalla.joblist." + cfg.Bucket}
	s.list, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Bucket + "_LIST",
		Description: "Kalla job list: the run ids of " + cfg.Bucket + " in creation order",
		Subjects:    []string{s.subject},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open job list stream: %w", err)
	}
	if err := s.listUnlisted(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// leaderReads turns off direct gets on a replicated bucket and binds it
// again, so that every Get is answered by the stream's leader. A direct get
// may be answered by a follower that lags behind the last write, and the
// worker decides from what it reads (drop a task, or whether an attempt
// still owns its job); compare-and-set writes stay safe either way, those
// decisions would not.
func leaderReads(ctx context.Context, js jetstream.JetStream, records jetstream.Stream) (jetstream.KeyValue, jetstream.Stream, error) {
	cfg := records.CachedInfo().Config
	if cfg.AllowDirect {
		cfg.AllowDirect = false
		var err error
		if records, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, nil, fmt.Errorf("turn off direct gets: %w", err)
		}
	}
	kv, err := js.KeyValue(ctx, strings.TrimPrefix(cfg.Name, "KV_"))
	if err != nil {
		return nil, nil, err
	}
	return kv, records, nil
}

// Create implements kalla.JobStore. The run id is appended to the list
// first, and the record keeps its place (ListSeq): a list entry whose
// record is missing or holds another place (the create failed, or a run id
// was submitted again) is skipped by List and removed by the sweep.
func (s *Store) Create(ctx context.Context, rec *kalla.JobRecord) (*kalla.JobRecord, error) {
	if err := s.makeRoom(ctx); err != nil {
		return nil, fmt.Errorf("create job %s: %w", rec.RunID, err)
	}
	ack, err := s.js.Publish(ctx, s.subject, []byte(rec.RunID), jetstream.WithMsgID(rec.RunID))
	if err != nil {
		return nil, fmt.Errorf("create job %s: list it: %w", rec.RunID, err)
	}
	out := *rec
	out.ListSeq = ack.Sequence
	data, err := json.Marshal(&out)
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

// Scan implements kalla.JobStore: one watcher streams the bucket's
// records, which is much faster than a read per record. The watcher is an
// ephemeral consumer, which may sit on a NATS server that just died: a scan
// that hears nothing for scanIdle fails rather than wait for ever.
func (s *Store) Scan(ctx context.Context, fn func(*kalla.JobRecord) error) error {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("scan jobs: %w", translate(err))
	}
	defer w.Stop()
	idle := time.NewTimer(scanIdle)
	defer idle.Stop()
	for {
		idle.Reset(scanIdle)
		select {
		case <-idle.C:
			return fmt.Errorf("scan jobs: no answer from the job store for %s", scanIdle)
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("scan jobs: watcher closed")
			}
			if e == nil { // every current record has been delivered
				return nil
			}
			rec, err := decodeRecord(e)
			if err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scanIdle bounds the wait for the next record of a Scan.
const scanIdle = 10 * time.Second

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
