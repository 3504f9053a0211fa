package startstop

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// service is the shape of every user of Base: a goroutine that runs on the
// service context until Stop.
type service struct {
	Base
	starts, stops atomic.Int32
	done          chan struct{}
}

func (s *service) Start(ctx context.Context) error {
	return s.StartOnce(ctx, "test service", func(ctx context.Context) error {
		s.starts.Add(1)
		s.done = make(chan struct{})
		go func() { <-ctx.Done(); close(s.done) }()
		return nil
	})
}

func (s *service) Stop() {
	s.StopOnce(func(cancel context.CancelCauseFunc) {
		s.stops.Add(1)
		cancel(nil)
		<-s.done
	})
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	s := &service{}
	s.Stop() // before Start: nothing to stop
	if s.stops.Load() != 0 || isClosed(s.Stopped()) {
		t.Fatal("Stop before Start ran the stop function or signalled Stopped")
	}

	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(s.Started()) {
		t.Fatal("Started not signalled after Start")
	}
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "test service already started") {
		t.Fatalf("second Start: %v, want an error naming the service", err)
	}
	cancel()
	if isClosed(s.done) {
		t.Fatal("the caller's cancellation ended the service context; only Stop may")
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Stop()
			// Every Stop returns only once the service has stopped.
			if !isClosed(s.Stopped()) || !isClosed(s.done) {
				t.Error("Stop returned before the service stopped")
			}
		}()
	}
	wg.Wait()
	if n := s.stops.Load(); n != 1 {
		t.Fatalf("stop function ran %d times, want 1", n)
	}
	if err := s.Start(context.Background()); err == nil || s.starts.Load() != 1 {
		t.Fatalf("Start after Stop: %v (starts %d), want an error and no new start", err, s.starts.Load())
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	var b Base
	boom := errors.New("boom")
	var first context.Context
	err := b.StartOnce(context.Background(), "svc", func(ctx context.Context) error { first = ctx; return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("StartOnce: %v, want boom", err)
	}
	if first.Err() == nil || !errors.Is(context.Cause(first), boom) {
		t.Fatal("the context of a failed start was not cancelled with its error")
	}
	if isClosed(b.Started()) {
		t.Fatal("Started signalled after a failed start")
	}
	b.StopOnce(func(context.CancelCauseFunc) { t.Fatal("stop ran after a failed start") })
	if err := b.StartOnce(context.Background(), "svc", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
}

func TestStopCause(t *testing.T) {
	t.Parallel()
	var b Base
	var svcCtx context.Context
	if err := b.StartOnce(context.Background(), "svc", func(ctx context.Context) error { svcCtx = ctx; return nil }); err != nil {
		t.Fatal(err)
	}
	shutdown := errors.New("shutting down")
	b.StopOnce(func(cancel context.CancelCauseFunc) {
		if svcCtx.Err() != nil {
			t.Error("service context cancelled before stop chose to")
		}
		cancel(shutdown)
	})
	if !errors.Is(context.Cause(svcCtx), shutdown) {
		t.Fatalf("cause %v, want the one stop gave", context.Cause(svcCtx))
	}
}
