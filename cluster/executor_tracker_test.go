package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kalla-dev/kalla/distributed"
)

// TestExecutorTracker follows executors joining and leaving a real
// membership bucket, and stops cleanly (the leak check in TestMain catches
// a loop left running).
func TestExecutorTracker(t *testing.T) {
	t.Parallel()
	b := setup(t, QueueConfig{})
	ctx := context.Background()
	members, err := OpenMembers(ctx, b.js, MembersConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "executors", Help: "test"})
	tr := NewExecutorTracker(members, gauge, b.logger)
	tr.every = 20 * time.Millisecond
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	count := func(n float64) func() bool { return func() bool { return testutil.ToFloat64(gauge) == n } }

	for _, id := range []string{"e1", "e2"} {
		if err := members.Put(ctx, distributed.ExecutorInfo{ID: id, Host: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two executors counted", count(2))
	if err := members.Leave(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one executor counted after one left", count(1))

	tr.Stop()
	tr.Stop()
	select {
	case <-tr.done:
	default:
		t.Fatal("Stop returned with the tracker's loop still running")
	}
	<-tr.Stopped()
}
