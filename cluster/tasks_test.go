package cluster

import (
	"context"
	"testing"
	"time"
)

// TestPurgeKeepsOtherAttemptsRedelivery replays what made a distributed job
// hang when jobs ran at once: attempt A's task waits for redelivery (its
// executor gave it back), attempt C is cancelled while its task is still
// unacknowledged on an executor, and attempt B finishes. Purging C and then B
// must not drop A's task: it must come back.
func TestPurgeKeepsOtherAttemptsRedelivery(t *testing.T) {
	b := setup(t, QueueConfig{})
	ctx := context.Background()
	q, err := OpenTaskQueue(ctx, b.js, TaskQueueConfig{AckWait: 5 * time.Second, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, gen := range []string{"b", "a", "c"} {
		if err := q.Publish(ctx, &ExecTask{Gen: gen, ID: "t-" + gen, Kind: TaskMatch}); err != nil {
			t.Fatal(err)
		}
	}
	held := map[string]*execDelivery{}
	for range 3 {
		d, err := q.next(ctx, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held[d.task.Gen] = d
	}
	// A's executor gives its task back, to be retried in a second.
	if err := held["a"].msg.NakWithDelay(time.Second); err != nil {
		t.Fatal(err)
	}
	// C is cancelled while its task still runs; the executor then acks.
	if err := q.Purge(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	_ = held["c"].msg.DoubleAck(ctx)
	// B publishes more tasks, they run, and B finishes.
	for i := range 5 {
		if err := q.Publish(ctx, &ExecTask{Gen: "b", ID: "more-" + string(rune('0'+i)), Kind: TaskMatch}); err != nil {
			t.Fatal(err)
		}
	}
	if err := held["b"].msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		d, err := q.next(ctx, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d.task.Gen != "b" {
			t.Fatalf("got attempt %q's task before B's were done", d.task.Gen)
		}
		if err := d.msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Purge(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	d, err := q.next(ctx, 5*time.Second)
	if err != nil {
		t.Fatalf("attempt A's task was not redelivered: %v", err)
	}
	if d.task.Gen != "a" || d.delivery != 2 {
		t.Fatalf("redelivered task %q of attempt %q (delivery %d), want A's second delivery", d.task.ID, d.task.Gen, d.delivery)
	}
}
