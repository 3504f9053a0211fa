package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// TaskResult is what an executor reports for a task, in the results bucket
// under "<gen>.<task id>".
type TaskResult struct {
	ID       string `json:"id"`
	Executor string `json:"executor"`
	Delivery int    `json:"delivery"`
	// Error is set when the task failed for good; Stage and Validation
	// describe it.
	Error      string      `json:"error,omitempty"`
	Stage      kalla.Stage `json:"stage,omitempty"`
	Validation bool        `json:"validation,omitempty"`

	Plan   *distributed.SplitPlan    `json:"plan,omitempty"`
	Staged *distributed.StagedSource `json:"staged,omitempty"`
	Counts *kalla.Counts             `json:"counts,omitempty"`
	// Bytes is what a match task wrote: its partial results.
	Bytes   int64         `json:"bytes,omitempty"`
	Result  *kalla.Result `json:"result,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

// TaskQueueConfig configures the executors' task queue.
type TaskQueueConfig struct {
	Stream, Consumer, Bucket string
	// AckWait is how long a task may go without a heartbeat before it is
	// redelivered to another executor: how long the loss of an executor
	// delays a job.
	AckWait time.Duration
	// MaxAttempts is how many times a task is tried before its job fails;
	// MaxDeliver is one more, so that the delivery after an executor died
	// on the last attempt reports the failure.
	MaxAttempts int
	Replicas    int
}

func (c *TaskQueueConfig) validate() error {
	if c.Stream == "" {
		c.Stream = "KALLA_EXEC"
	}
	if c.Consumer == "" {
		c.Consumer = "kalla-executors"
	}
	if c.Bucket == "" {
		c.Bucket = "KALLA_TASK_RESULTS"
	}
	return delivery{what: "task queue", ackWait: &c.AckWait, defWait: 15 * time.Second, least: 300 * time.Millisecond,
		maxAttempts: &c.MaxAttempts, replicas: &c.Replicas}.defaults()
}

// taskSubject is the subject of gen's tasks: one subject per attempt, so a
// coordinator that gives up can purge what is left of its tasks.
func taskSubject(gen string) string { return "kalla.exec." + gen }

// TaskQueue carries executor tasks (a work-queue stream with explicit acks,
// in-progress heartbeats and a delivery limit) and their results (a
// key-value bucket the coordinator watches).
type TaskQueue struct {
	cfg     TaskQueueConfig
	js      jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	results jetstream.KeyValue

	// published holds, per attempt (gen), the stream sequences of the tasks
	// this process queued, for Purge.
	mu        sync.Mutex
	published map[string][]uint64
}

// OpenTaskQueue creates or updates the stream, its consumer and the results
// bucket. The scheduler opens it with its settings; executors open it with
// the same defaults and read the consumer's actual AckWait and MaxDeliver.
func OpenTaskQueue(ctx context.Context, js jetstream.JetStream, cfg TaskQueueConfig) (*TaskQueue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	stream, cons, err := workQueue{
		stream: cfg.Stream, streamDesc: "Kalla executor tasks: the parts of distributed jobs", subjects: []string{"kalla.exec.>"},
		duplicates: 2 * time.Minute, consumer: cfg.Consumer, consDesc: "Kalla executors",
		ackWait: cfg.AckWait, maxAttempts: cfg.MaxAttempts, replicas: cfg.Replicas,
	}.open(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("open executor task queue: %w", err)
	}
	results, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Kalla executor task results",
		TTL:         24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open task results bucket %s: %w", cfg.Bucket, err)
	}
	return &TaskQueue{cfg: cfg, js: js, stream: stream, cons: cons, results: results}, nil
}

// Publish queues t.
func (q *TaskQueue) Publish(ctx context.Context, t *ExecTask) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	ack, err := q.js.Publish(ctx, taskSubject(t.Gen), data, jetstream.WithMsgID(t.Gen+"/"+t.ID))
	if err != nil {
		return fmt.Errorf("queue task %s: %w", t.ID, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.published == nil {
		q.published = map[string][]uint64{}
	}
	q.published[t.Gen] = append(q.published[t.Gen], ack.Sequence)
	return nil
}

// Purge removes what is left of the tasks this process queued for gen.
//
// It deletes them one by one, by sequence, rather than purging gen's
// subject: with nats-server v2.15.2, purging a subject of a work-queue
// stream while a task of that subject is still unacknowledged corrupts the
// consumer's pending state ("bad pending entry, sequence out of range") so
// that a later purge drops ANOTHER attempt's task waiting for redelivery,
// which then never comes back and its job hangs (nats-server issue 5727;
// TestPurgeKeepsOtherAttemptsRedelivery).
func (q *TaskQueue) Purge(ctx context.Context, gen string) error {
	q.mu.Lock()
	seqs := q.published[gen]
	delete(q.published, gen)
	q.mu.Unlock()
	var errs []error
	for _, seq := range seqs {
		// A task already acknowledged is gone from the work queue.
		if err := q.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNoMessage(err) {
			errs = append(errs, fmt.Errorf("delete task %d of %s: %w", seq, gen, err))
		}
	}
	return errors.Join(errs...)
}

// isNoMessage reports the server's answer for a task already removed
// (acknowledged): nats.go wraps it in ErrMsgDeleteUnsuccessful as text, so
// the codes are matched there ("sequence N not found", err_code=10043, for a
// sequence past the stream's first; "no message found", err_code=10057,
// for one before it).
func isNoMessage(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound || apiErr.ErrorCode == 10043 || apiErr.ErrorCode == 10057
	}
	msg := err.Error()
	return errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && (strings.Contains(msg, "err_code=10043") || strings.Contains(msg, "err_code=10057"))
}

// Report stores the result of a task.
func (q *TaskQueue) Report(ctx context.Context, gen string, r *TaskResult) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := q.results.Put(ctx, gen+"."+r.ID, data); err != nil {
		return fmt.Errorf("report task %s: %w", r.ID, err)
	}
	return nil
}

// Watch calls fn with every result of gen's tasks, present and future,
// until ctx is done.
func (q *TaskQueue) Watch(ctx context.Context, gen string) (<-chan *TaskResult, error) {
	w, err := q.results.Watch(ctx, gen+".*")
	if err != nil {
		return nil, fmt.Errorf("watch task results: %w", err)
	}
	out := make(chan *TaskResult, 64)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				var r TaskResult
				if json.Unmarshal(e.Value(), &r) != nil {
					continue
				}
				select {
				case out <- &r:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Forget deletes gen's results.
func (q *TaskQueue) Forget(ctx context.Context, gen string, ids []string) {
	for _, id := range ids {
		_ = q.results.Purge(ctx, gen+"."+id)
	}
}

// execDelivery is one delivery of a task to an executor.
type execDelivery struct {
	task     ExecTask
	delivery int
	msg      jetstream.Msg
}

// next waits up to wait for a task; errNoTask when none came.
func (q *TaskQueue) next(ctx context.Context, wait time.Duration) (*execDelivery, error) {
	msg, meta, err := fetch(ctx, q.cons, wait)
	if err != nil {
		return nil, err
	}
	d := &execDelivery{delivery: int(meta.NumDelivered), msg: msg}
	if err := json.Unmarshal(msg.Data(), &d.task); err != nil || d.task.ID == "" {
		_ = msg.TermWithReason("malformed task")
		return nil, fmt.Errorf("malformed executor task %d", meta.Sequence.Stream)
	}
	return d, nil
}

// settings reads the consumer's actual AckWait and attempt limit, which the
// scheduler decides.
func (q *TaskQueue) settings(ctx context.Context) (ackWait time.Duration, maxAttempts int, err error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read task consumer: %w", err)
	}
	return info.Config.AckWait, info.Config.MaxDeliver - 1, nil
}

// TaskStats are the executor queue's numbers, for metrics.
type TaskStats struct {
	Queued, Running, Redelivered int
}

// Stats reads the consumer's counters.
func (q *TaskQueue) Stats(ctx context.Context) (TaskStats, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return TaskStats{}, fmt.Errorf("task queue stats: %w", err)
	}
	return TaskStats{Queued: int(info.NumPending), Running: info.NumAckPending, Redelivered: info.NumRedelivered}, nil
}

// BindTaskQueue opens the task queue the scheduler created, keeping its
// settings; it fails while the scheduler has not created it yet.
func BindTaskQueue(ctx context.Context, js jetstream.JetStream, cfg TaskQueueConfig) (*TaskQueue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("find executor task stream %s: %w", cfg.Stream, err)
	}
	cons, err := stream.Consumer(ctx, cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("find executor task consumer %s: %w", cfg.Consumer, err)
	}
	results, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("find task results bucket %s: %w", cfg.Bucket, err)
	}
	return &TaskQueue{cfg: cfg, js: js, stream: stream, cons: cons, results: results}, nil
}
