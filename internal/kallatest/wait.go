package kallatest

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, failing t with what if it
// does not within the given time. Tests wait on conditions, never on fixed
// sleeps.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
