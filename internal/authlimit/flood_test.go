package authlimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestFloodFreesATenth: once MaxClients locked addresses are remembered, a
// new address frees a tenth of them at once, not one: freeing one read
// every bucket for each new address of a flood, under the lock that every
// attempt takes. The new address and the locked ones kept stay locked.
func TestFloodFreesATenth(t *testing.T) {
	c := kallatest.NewClock(time.Unix(0, 0))
	l := New(Config{Burst: 1, Every: time.Minute, MaxClients: 100, Now: c.Now})
	addr := func(i int) string { return fmt.Sprintf("[2001:db8:0:%x::1]:443", i) }
	for i := range 100 {
		l.Attempt(addr(i), false)
	}
	if len(l.clients) != 100 {
		t.Fatalf("%d addresses remembered, want 100", len(l.clients))
	}
	l.Attempt(addr(100), false)
	if len(l.clients) != 91 {
		t.Errorf("after one more address, %d remembered, want 90 kept and the new one", len(l.clients))
	}
	// The next nine new addresses fit without forgetting anyone.
	for i := 101; i < 110; i++ {
		l.Attempt(addr(i), false)
	}
	if len(l.clients) != 100 {
		t.Errorf("%d addresses remembered, want 100", len(l.clients))
	}
	locked := 0
	for i := range 110 {
		if l.Attempt(addr(i), true) > 0 {
			locked++
		}
	}
	if locked != 100 {
		t.Errorf("%d addresses locked, want the 100 remembered", locked)
	}
}

// BenchmarkAttemptFlood: wrong tokens from ever new IPv6 /64s, with the
// bound reached.
func BenchmarkAttemptFlood(b *testing.B) {
	l := New(Config{Now: func() time.Time { return time.Unix(0, 0) }})
	i := 0
	for b.Loop() {
		l.Attempt(fmt.Sprintf("[2001:db8:%x:%x::1]:443", i>>16&0xffff, i&0xffff), false)
		i++
	}
}
