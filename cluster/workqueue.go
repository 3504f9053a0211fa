package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// delivery holds the settings the job queue and the executor task queue
// share, with their defaults.
type delivery struct {
	// what names the queue in errors.
	what string
	// ackWait defaults to defWait and may not be below least.
	ackWait        *time.Duration
	defWait, least time.Duration
	maxAttempts    *int
	replicas       *int
}

func (d delivery) defaults() error {
	if *d.ackWait == 0 {
		*d.ackWait = d.defWait
	}
	if *d.ackWait < d.least {
		return fmt.Errorf("%s config: AckWait %s is too short", d.what, *d.ackWait)
	}
	if *d.maxAttempts == 0 {
		*d.maxAttempts = 3
	}
	if *d.maxAttempts < 1 {
		return fmt.Errorf("%s config: MaxAttempts must be at least 1, got %d", d.what, *d.maxAttempts)
	}
	return checkReplicas(d.what, d.replicas)
}

// workQueue describes a work-queue stream and its one durable consumer
// with explicit acks; MaxDeliver is one more than the attempts, so that the
// delivery after a runner died on the last attempt records the failure.
type workQueue struct {
	stream, streamDesc string
	subjects           []string
	duplicates         time.Duration
	consumer, consDesc string
	filter             string
	ackWait            time.Duration
	maxAttempts        int
	replicas           int
}

// open creates or updates the stream and its consumer.
func (w workQueue) open(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, jetstream.Consumer, error) {
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        w.stream,
		Description: w.streamDesc,
		Subjects:    w.subjects,
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  w.duplicates,
		Replicas:    w.replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open stream %s: %w", w.stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       w.consumer,
		Description:   w.consDesc,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.ackWait,
		MaxDeliver:    w.maxAttempts + 1,
		FilterSubject: w.filter,
		// Every runner bounds its own concurrency; this only caps the
		// cluster as a whole.
		MaxAckPending: 10000,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open consumer %s: %w", w.consumer, err)
	}
	return stream, cons, nil
}

// fetch waits up to wait for the consumer's next message; errNoTask when
// none came.
func fetch(ctx context.Context, cons jetstream.Consumer, wait time.Duration) (jetstream.Msg, *jetstream.MsgMetadata, error) {
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(fctx))
	if err != nil {
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages) {
			return nil, nil, errNoTask
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("fetch task: %w", err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return nil, nil, fmt.Errorf("read task metadata: %w", err)
	}
	return msg, meta, nil
}

// consume runs handle on what next fetches, each in its own goroutine
// counted in running, with at most cap(free) of them at once (fewer while
// others hold tokens of free, see Worker.TakeSlot): it fetches only when a
// slot is free, so a busy process leaves work in the queue for others. A
// failed fetch other than errNoTask is logged and tried again a second
// later. It returns when ctx ends.
func consume[T any](ctx context.Context, free chan struct{}, next func(context.Context) (T, error), handle func(T), running *sync.WaitGroup, log *slog.Logger) {
	for {
		select {
		case free <- struct{}{}:
		case <-ctx.Done():
			return
		}
		item, err := next(ctx)
		if err != nil {
			<-free
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, errNoTask) {
				log.Warn("fetch task failed", "err", err)
				if !sleepCtx(ctx, time.Second) {
					return
				}
			}
			continue
		}
		running.Add(1)
		go func() {
			defer func() { <-free; running.Done() }()
			handle(item)
		}()
	}
}
