package authlimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

func TestBucket(t *testing.T) {
	c := kallatest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	l := New(Config{Burst: 3, Every: 10 * time.Second, Now: c.Now})
	const a = "192.0.2.1:4000"
	for i := range 3 {
		if w := l.Attempt(a, false); w != 0 {
			t.Fatalf("wrong attempt %d refused (wait %s) within the burst", i+1, w)
		}
	}
	// The bucket is empty: wrong and right tokens alike wait 10 s.
	if w := l.Attempt(a, false); w != 10*time.Second {
		t.Errorf("4th wrong attempt: wait %s, want 10s", w)
	}
	if w := l.Attempt(a, true); w != 10*time.Second {
		t.Errorf("the right token while locked: wait %s, want 10s", w)
	}
	// The same host from another port is the same client.
	if w := l.Attempt("192.0.2.1:5000", true); w == 0 {
		t.Error("another port of the locked address got in")
	}
	// Another client is not locked out.
	if w := l.Attempt("192.0.2.2:4000", true); w != 0 {
		t.Errorf("another client waits %s", w)
	}
	if w := l.Attempt("192.0.2.2:4000", false); w != 0 {
		t.Errorf("another client's first wrong attempt waits %s", w)
	}
	c.Advance(4 * time.Second)
	if w := l.Attempt(a, true); w != 6*time.Second {
		t.Errorf("4 s later: wait %s, want 6s", w)
	}
	c.Advance(6 * time.Second)
	if w := l.Attempt(a, true); w != 0 {
		t.Errorf("after the wait, the right token waits %s", w)
	}
	// One attempt earned: one wrong guess, then locked again.
	if w := l.Attempt(a, false); w != 0 {
		t.Errorf("the earned attempt waits %s", w)
	}
	if w := l.Attempt(a, false); w != 10*time.Second {
		t.Errorf("after the earned attempt: wait %s, want 10s", w)
	}
	// A long pause refills the bucket, never beyond the burst.
	c.Advance(time.Hour)
	for i := range 3 {
		if w := l.Attempt(a, false); w != 0 {
			t.Fatalf("after an hour, wrong attempt %d waits %s", i+1, w)
		}
	}
	if w := l.Attempt(a, false); w == 0 {
		t.Error("after an hour the bucket holds more than the burst")
	}
}

// Successful attempts take nothing from the bucket.
func TestSuccessIsFree(t *testing.T) {
	c := kallatest.NewClock(time.Unix(0, 0))
	l := New(Config{Burst: 2, Every: time.Minute, Now: c.Now})
	for range 100 {
		if w := l.Attempt("192.0.2.1:1", true); w != 0 {
			t.Fatalf("a right token waits %s", w)
		}
	}
	if len(l.clients) != 0 {
		t.Errorf("right tokens are remembered: %v", l.clients)
	}
}

// IPv6 clients are counted by /64; the remembered addresses are bounded.
func TestClientKeyAndBound(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:80": "192.0.2.1", "[::ffff:192.0.2.1]:80": "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:80": "2001:db8:1:2::/64", "[2001:db8:1:2::9]:1": "2001:db8:1:2::/64", "pipe": "pipe",
	} {
		if got := clientKey(addr); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}
	c := kallatest.NewClock(time.Unix(0, 0))
	l := New(Config{Burst: 1, Every: time.Minute, MaxClients: 5, Now: c.Now})
	for i := range 50 {
		l.Attempt(fmt.Sprintf("198.51.100.%d:1", i), false)
		if len(l.clients) > 5 {
			t.Fatalf("%d addresses remembered, bound 5", len(l.clients))
		}
	}
	// The last guesser is still locked.
	if w := l.Attempt("198.51.100.49:1", true); w == 0 {
		t.Error("the latest locked address was forgotten")
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{6 * time.Second: "6", 5100 * time.Millisecond: "6", time.Millisecond: "1"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%s) = %s, want %s", d, got, want)
		}
	}
}
