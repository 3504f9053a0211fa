package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

// QueueConfig configures the task queue.
type QueueConfig struct {
	// Stream, Subject and Consumer name the work-queue stream, the subject
	// tasks are published on and the durable consumer runners share.
	Stream   string
	Subject  string
	Consumer string
	// AckWait is how long a task may go without a heartbeat before it is
	// redelivered to another runner: it bounds how long a job whose runner
	// died waits before it is retried.
	AckWait time.Duration
	// MaxAttempts is how many times a job is run before it fails for good.
	// The consumer's MaxDeliver is one more: the extra delivery runs
	// nothing and records the failure of a job whose runner died during
	// its last attempt.
	MaxAttempts int
	// DuplicateWindow is how long a second Enqueue of a run id is ignored.
	DuplicateWindow time.Duration
	// Replicas is the stream's replication factor (its consumer follows
	// it). Default 1.
	Replicas int
}

func (c *QueueConfig) validate() error {
	if c.Stream == "" {
		c.Stream = "KALLA_TASKS"
	}
	if c.Subject == "" {
		c.Subject = "kalla.tasks"
	}
	if c.Consumer == "" {
		c.Consumer = "kalla-runners"
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	return delivery{what: "queue", ackWait: &c.AckWait, defWait: 30 * time.Second, least: 100 * time.Millisecond,
		maxAttempts: &c.MaxAttempts, replicas: &c.Replicas}.defaults()
}

// Queue is a kalla.Queue on a JetStream work-queue stream: a task stays in
// the stream until a runner acknowledges it, so an accepted job survives a
// crash of every process.
type Queue struct {
	cfg    QueueConfig
	js     jetstream.JetStream
	stream jetstream.Stream
	cons   jetstream.Consumer
}

var _ kalla.Queue = (*Queue)(nil)

// OpenQueue creates or updates the stream and its consumer.
func OpenQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	stream, cons, err := workQueue{
		stream: cfg.Stream, streamDesc: "Kalla task queue: one message per accepted run", subjects: []string{cfg.Subject},
		duplicates: cfg.DuplicateWindow, consumer: cfg.Consumer, consDesc: "Kalla runners", filter: cfg.Subject,
		ackWait: cfg.AckWait, maxAttempts: cfg.MaxAttempts, replicas: cfg.Replicas,
	}.open(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("open task queue: %w", err)
	}
	return &Queue{cfg: cfg, js: js, stream: stream, cons: cons}, nil
}

type taskBody struct {
	RunID string `json:"run_id"`
}

// Enqueue implements kalla.Queue.
func (q *Queue) Enqueue(ctx context.Context, runID string) error {
	data, err := json.Marshal(taskBody{RunID: runID})
	if err != nil {
		return err
	}
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(runID)); err != nil {
		return fmt.Errorf("enqueue job %s: %w", runID, err)
	}
	return nil
}

// Requeue puts the run of t back in the queue as a fresh task and removes t.
//
// It does not Nak t: a task that is pending when the NATS server stops
// (the embedded one stops with the scheduler) is redelivered only after its
// AckWait once the server is back, Nak or not; we measured 30s (the AckWait)
// between a SIGTERM and the next run. A fresh task is delivered at once, to
// any runner. Should the process die between the two steps, the job has two
// tasks, and runners drop the duplicate.
func (q *Queue) Requeue(ctx context.Context, t *Task) error {
	data, err := json.Marshal(taskBody{RunID: t.RunID})
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s/requeue/%d", t.RunID, t.Seq)
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("requeue job %s: %w", t.RunID, err)
	}
	if err := t.Ack(ctx); err != nil {
		return fmt.Errorf("requeue job %s: ack the old task: %w", t.RunID, err)
	}
	return nil
}

// Task is one delivery of a queued run to a runner.
type Task struct {
	RunID string
	// Seq is the task's stream sequence: the same on every delivery of
	// this task, different for a duplicate task of the same run.
	Seq uint64
	// Delivery counts the deliveries of this task, from 1.
	Delivery int
	// Enqueued is when the task was published.
	Enqueued time.Time
	msg      jetstream.Msg
}

// Heartbeat tells the queue the task is still being worked on, postponing
// its redelivery by another AckWait.
func (t *Task) Heartbeat() error { return t.msg.InProgress() }

// Ack removes the task from the queue, waiting for the server to confirm.
func (t *Task) Ack(ctx context.Context) error { return t.msg.DoubleAck(ctx) }

// Term drops a task that can never be run (its record is gone).
func (t *Task) Term(reason string) error { return t.msg.TermWithReason(reason) }

// errNoTask means no task arrived before the fetch expired.
var errNoTask = errors.New("no task")

// next waits up to wait for a task; it returns errNoTask when none came.
func (q *Queue) next(ctx context.Context, wait time.Duration) (*Task, error) {
	msg, meta, err := fetch(ctx, q.cons, wait)
	if err != nil {
		return nil, err
	}
	var body taskBody
	if err := json.Unmarshal(msg.Data(), &body); err != nil || body.RunID == "" {
		_ = msg.TermWithReason("malformed task")
		return nil, fmt.Errorf("malformed task %d: %q", meta.Sequence.Stream, msg.Data())
	}
	return &Task{
		RunID:    body.RunID,
		Seq:      meta.Sequence.Stream,
		Delivery: int(meta.NumDelivered),
		Enqueued: meta.Timestamp,
		msg:      msg,
	}, nil
}

// QueueStats describe the tasks no runner has taken yet.
type QueueStats struct {
	Depth      int
	OldestWait time.Duration
}

// Stats returns the number of tasks never delivered yet and how long the
// oldest of them has waited. Redeliveries (retries) are not counted.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return QueueStats{}, fmt.Errorf("queue stats: %w", err)
	}
	st := QueueStats{Depth: int(info.NumPending)}
	if st.Depth == 0 {
		return st, nil
	}
	// The next task to deliver follows the last delivered one.
	msg, err := q.stream.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(q.cfg.Subject))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return st, nil
		}
		return st, fmt.Errorf("queue stats: %w", err)
	}
	st.OldestWait = time.Since(msg.Time)
	return st, nil
}
