// Package startstop gives kallad's background services (the API and probe
// servers, the callback sender, the scheduler's worker, the executor) one
// Start/Stop discipline, as River's rivershared/startstop does: Start runs
// once, Stop is a no-op before Start and runs once however often and from
// however many goroutines it is called, the service's goroutines share a
// context that the caller's cancellation does not end but Stop does, and
// Started and Stopped are signals that tests wait on instead of sleeping.
package startstop

import (
	"context"
	"fmt"
	"sync"
)

type state int

const (
	idle state = iota
	running
	stopped
)

// Base is embedded in a service. Its zero value is ready to use.
type Base struct {
	// mu is held through the service's start and stop functions, so that
	// they never overlap and a second Stop returns only once the first has
	// finished.
	mu     sync.Mutex
	state  state
	cancel context.CancelCauseFunc

	signals           sync.Once
	started, finished chan struct{}
}

func (b *Base) initSignals() {
	b.signals.Do(func() {
		b.started = make(chan struct{})
		b.finished = make(chan struct{})
	})
}

// StartOnce runs start, once: a second call, or a call after Stop, returns
// an error naming the service. start gets the service context: it keeps
// ctx's values, is not cancelled with ctx (a service stops when it is told
// to, in the order its owner chooses), and is cancelled when stop cancels it
// or, at the latest, when StopOnce returns. If start fails, the service is
// left unstarted and may be started again.
func (b *Base) StartOnce(ctx context.Context, name string, start func(ctx context.Context) error) error {
	b.initSignals()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case running:
		return fmt.Errorf("%s already started", name)
	case stopped:
		return fmt.Errorf("%s stopped; it cannot start again", name)
	}
	svcCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	if err := start(svcCtx); err != nil {
		cancel(err)
		return err
	}
	b.state, b.cancel = running, cancel
	close(b.started)
	return nil
}

// StopOnce runs stop if the service is running, once; before Start it does
// nothing. stop gets the cancel function of the service context, to end
// the service's goroutines at the point of its shutdown it chooses (with a
// cause they can tell apart); the context is cancelled after stop returns
// in any case.
func (b *Base) StopOnce(stop func(cancel context.CancelCauseFunc)) {
	b.initSignals()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != running {
		return
	}
	stop(b.cancel)
	b.cancel(nil)
	b.state = stopped
	close(b.finished)
}

// Started is closed once Start has succeeded.
func (b *Base) Started() <-chan struct{} {
	b.initSignals()
	return b.started
}

// Stopped is closed once Stop has finished.
func (b *Base) Stopped() <-chan struct{} {
	b.initSignals()
	return b.finished
}
