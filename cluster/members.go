package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla/distributed"
)

// MembersConfig configures the executors' membership bucket.
type MembersConfig struct {
	Bucket string
	// TTL is how long an executor stays listed after its last heartbeat;
	// executors heartbeat every TTL/3.
	TTL time.Duration
	// Replicas is the bucket's replication factor. Default 1.
	Replicas int
}

func (c *MembersConfig) validate() error {
	if c.Bucket == "" {
		c.Bucket = "KALLA_EXECUTORS"
	}
	if c.TTL == 0 {
		c.TTL = 6 * time.Second
	}
	if c.TTL < 300*time.Millisecond {
		return fmt.Errorf("members config: TTL %s is too short", c.TTL)
	}
	return checkReplicas("members", &c.Replicas)
}

// listTimeout bounds a listing of the executors.
const listTimeout = 10 * time.Second

// Members is the set of live executors: a key-value bucket whose entries
// expire TTL after their last update, so an executor that dies (SIGKILL, a
// lost node) drops out on its own, and one that leaves deletes its entry.
type Members struct {
	cfg MembersConfig
	kv  jetstream.KeyValue
}

// OpenMembers creates or binds the membership bucket.
func OpenMembers(ctx context.Context, js jetstream.JetStream, cfg MembersConfig) (*Members, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Kalla executors: one entry per live executor",
		TTL:         cfg.TTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open executors bucket %s: %w", cfg.Bucket, err)
	}
	return &Members{cfg: cfg, kv: kv}, nil
}

// BindMembers binds the membership bucket the scheduler created, taking
// its TTL from the bucket. Executors bind rather than create it, so that
// they never change the scheduler's settings (an update to one replica
// would undo --nats-replicas).
func BindMembers(ctx context.Context, js jetstream.JetStream, bucket string) (*Members, error) {
	cfg := MembersConfig{Bucket: bucket}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("find executors bucket %s: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read executors bucket %s: %w", cfg.Bucket, err)
	}
	if st.TTL() > 0 {
		cfg.TTL = st.TTL()
	}
	return &Members{cfg: cfg, kv: kv}, nil
}

// Interval is how often an executor heartbeats.
func (m *Members) Interval() time.Duration { return m.cfg.TTL / 3 }

// Put records info as live now.
func (m *Members) Put(ctx context.Context, info distributed.ExecutorInfo) error {
	info.LastSeen = time.Now().UTC()
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if _, err := m.kv.Put(ctx, info.ID, data); err != nil {
		return fmt.Errorf("heartbeat executor %s: %w", info.ID, err)
	}
	return nil
}

// Leave removes id at once.
func (m *Members) Leave(ctx context.Context, id string) error {
	return m.kv.Purge(ctx, id)
}

// Executors lists the live executors, by id.
//
// The listing is bounded by listTimeout: its watcher is an ephemeral
// consumer, which may sit on a NATS server that just died and would then
// never answer.
func (m *Members) Executors(ctx context.Context) ([]distributed.ExecutorInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	keys, err := m.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list executors: %w", err)
	}
	var out []distributed.ExecutorInfo
	for k := range keys.Keys() {
		e, err := m.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read executor %s: %w", k, err)
		}
		var info distributed.ExecutorInfo
		if json.Unmarshal(e.Value(), &info) != nil {
			continue
		}
		out = append(out, info)
	}
	if err := ctx.Err(); err != nil {
		// The lister stops early, without an error, when ctx ends.
		return nil, fmt.Errorf("list executors: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
