package cluster

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kalla-dev/kalla"
)

// Joined is an executor's connection to its scheduler's cluster: the task
// queue it takes work from and the membership it announces itself in.
type Joined struct {
	Conn    *nats.Conn
	Tasks   *TaskQueue
	Members *Members
}

// Join connects to the cluster at url as name and binds the task queue and
// the membership bucket, retrying until they answer or ctx ends: an
// executor may start before its scheduler, or before the scheduler has
// created the queue.
func Join(ctx context.Context, url, name string, logger *slog.Logger, opts ...nats.Option) (*Joined, error) {
	var j Joined
	for {
		nc, err := Connect(url, name, append(opts, nats.RetryOnFailedConnect(false))...)
		if err == nil {
			j.Conn = nc
			break
		}
		logger.Warn("scheduler not reachable yet", "url", kalla.RedactURI(url), "err", err)
		if !sleepCtx(ctx, 2*time.Second) {
			return nil, ctx.Err()
		}
	}
	js, err := JetStream(j.Conn)
	if err != nil {
		j.Conn.Close()
		return nil, err
	}
	for {
		j.Tasks, err = BindTaskQueue(ctx, js, TaskQueueConfig{})
		if err == nil {
			j.Members, err = BindMembers(ctx, js, "")
		}
		if err == nil {
			return &j, nil
		}
		logger.Warn("the scheduler's task queue is not there yet", "err", err)
		if !sleepCtx(ctx, time.Second) {
			j.Conn.Close()
			return nil, ctx.Err()
		}
	}
}
