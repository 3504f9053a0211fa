package kalla

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// countOutput counts its publishes.
type countOutput struct{ published atomic.Int32 }

func (o *countOutput) Prepare(context.Context) (string, error) { return "", nil }
func (o *countOutput) Location(name string) string             { return "mem://fence/" + name }
func (o *countOutput) Discard(string) error                    { return nil }
func (o *countOutput) Publish(context.Context, string) error {
	o.published.Add(1)
	return nil
}

// The publish check runs at the publish, and a refusal keeps the output
// untouched and is the publish's error.
func TestPublishCheckGuardsPublish(t *testing.T) {
	t.Parallel()
	lost := errors.New("lost the job")
	var checks atomic.Int32
	owner := true
	ctx := WithPublishCheck(context.Background(), func(context.Context) error {
		checks.Add(1)
		if !owner {
			return lost
		}
		return nil
	})
	out := &countOutput{}
	if err := publishOutput(ctx, out, ""); err != nil || out.published.Load() != 1 || checks.Load() != 1 {
		t.Fatalf("owner's publish: err %v, %d publishes, %d checks", err, out.published.Load(), checks.Load())
	}
	owner = false
	if err := publishOutput(ctx, out, ""); !errors.Is(err, lost) || out.published.Load() != 1 {
		t.Fatalf("refused publish: err %v, %d publishes, want the check's error and no publish", err, out.published.Load())
	}
	if err := publishOutput(context.Background(), out, ""); err != nil || out.published.Load() != 2 {
		t.Fatalf("without a check: err %v, %d publishes", err, out.published.Load())
	}
}
