package kalla_test

import (
	"context"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := kalla.WithJobTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if kalla.JobTimeout(ctx) != nil {
		t.Fatal("a live context reports a timeout")
	}
	<-ctx.Done()
	if te := kalla.JobTimeout(ctx); te == nil || te.Error() != "job exceeded --job-timeout 20ms" {
		t.Fatalf("JobTimeout = %v", te)
	}

	// Stopped for another reason (a cancel request, shutdown): no timeout.
	parent, stop := context.WithCancel(context.Background())
	ctx, cancel = kalla.WithJobTimeout(parent, time.Hour)
	defer cancel()
	stop()
	<-ctx.Done()
	if te := kalla.JobTimeout(ctx); te != nil {
		t.Fatalf("JobTimeout after a cancel = %v", te)
	}

	ctx, cancel = kalla.WithJobTimeout(context.Background(), 0)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("limit 0 set a deadline")
	}
}
