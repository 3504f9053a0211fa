package kalla

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// gateOutput publishes when its gate opens, counting publishes in flight:
// it stands for an adapter with no lock of its own, such as S3.
type gateOutput struct {
	loc      string
	gate     chan struct{}
	entered  chan struct{}
	inFlight *atomic.Int32
	most     *atomic.Int32
}

func (o *gateOutput) Prepare(context.Context) (string, error) { return "", nil }
func (o *gateOutput) Location(name string) string             { return o.loc + "/" + name }
func (o *gateOutput) Discard(string) error                    { return nil }
func (o *gateOutput) Publish(ctx context.Context, _ string) error {
	n := o.inFlight.Add(1)
	defer o.inFlight.Add(-1)
	for m := o.most.Load(); n > m; m = o.most.Load() {
		if o.most.CompareAndSwap(m, n) {
			break
		}
	}
	o.entered <- struct{}{}
	select {
	case <-o.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Two publishes to one location in one process run one after the other;
// to another location, at once; a waiting publish stops when cancelled.
func TestPublishOutputSerialisesOneLocation(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	gate, entered := make(chan struct{}), make(chan struct{}, 4)
	out := func(loc string) *gateOutput {
		return &gateOutput{loc: loc, gate: gate, entered: entered, inFlight: &inFlight, most: &most}
	}
	ctx := context.Background()
	errs := make(chan error, 3)
	go func() { errs <- publishOutput(ctx, out("s3://b/one"), "") }()
	<-entered
	go func() { errs <- publishOutput(ctx, out("s3://b/two"), "") }()
	<-entered // another location is not held up
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := publishOutput(cctx, out("s3://b/one"), ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second publish to one location: %v, want it to wait until cancelled", err)
	}
	go func() { errs <- publishOutput(ctx, out("s3://b/one"), "") }()
	close(gate)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d publishes at once, want 2 (one per location)", m)
	}
}
