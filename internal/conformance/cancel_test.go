package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// testCancel: cancelling a job as it starts reading a large source stops
// the read promptly, reported as a cancellation during staging (not after
// a full read, when matching would notice it). The cancel comes from the
// progress report that staging begins, so the test does not depend on
// timing.
func testCancel(t *testing.T, k Kind, uri string) {
	t.Run("at_start", func(t *testing.T) { cancelAtStart(t, k, uri) })
	t.Run("mid_read", func(t *testing.T) { cancelMidRead(t, k, uri) })
}

func cancelAtStart(t *testing.T, k Kind, uri string) {
	k.known(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	progress := func(p kalla.Progress) {
		if p.Stage == kalla.StageStaging && p.Source == "left_src" && cancelledAt.IsZero() {
			cancelledAt = time.Now()
			cancel()
		}
	}
	_, err := k.r.Run(ctx, matchNothing(t, uri), progress)
	if cancelledAt.IsZero() {
		t.Fatalf("staging of the source was never reported (err %v)", err)
	}
	took := time.Since(cancelledAt)
	if !errors.Is(err, kalla.ErrCancelled) || kalla.ErrorStage(err) != kalla.StageCancelled {
		t.Fatalf("got %v (stage %s), want a cancellation", err, kalla.ErrorStage(err))
	}
	if !strings.Contains(err.Error(), "during staging") {
		t.Errorf("cancelled %v, want during staging: the read did not stop", err)
	}
	if took > 5*time.Second {
		t.Errorf("the job stopped %v after the cancel", took)
	}
	checkNoSecret(t, k, err)
}

// cancelMidRead: a job whose read stalls on the server (a lock, a slow
// object store) stops promptly when cancelled, whichever stage that read
// belongs to, and the stall ends.
func cancelMidRead(t *testing.T, k Kind, uri string) {
	k.known(t)
	if k.Stall == nil {
		t.Skip("the kind's reads cannot be stalled from outside (DuckDB reads local files itself)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, release := k.Stall(t, "large")
	// A source that ignores the cancel would wait for the stall forever:
	// end it after a while, so that the test fails instead of hanging.
	safety := time.AfterFunc(20*time.Second, release)
	defer func() {
		if safety.Stop() {
			release()
		}
	}()
	var cancelledAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-started:
			cancelledAt = time.Now()
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := k.r.Run(ctx, matchNothing(t, uri), nil)
	cancel()
	<-done
	if cancelledAt.IsZero() {
		t.Fatalf("the read never stalled (err %v)", err)
	}
	took := time.Since(cancelledAt)
	t.Logf("stopped %v after the cancel: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, kalla.ErrCancelled) || kalla.ErrorStage(err) != kalla.StageCancelled {
		t.Fatalf("got %v (stage %s), want a cancellation", err, kalla.ErrorStage(err))
	}
	if took > 5*time.Second {
		t.Errorf("the job stopped %v after the cancel", took)
	}
	checkNoSecret(t, k, err)
}
