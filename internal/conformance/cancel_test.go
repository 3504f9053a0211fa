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
