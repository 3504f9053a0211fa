package kallatest

import (
	"net"
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

// NonLoopbackIP returns an IPv4 address of this host that is not a loopback
// address, so that a connection to it comes from it (what protected mode
// refuses); it skips the test on a host without one.
func NonLoopbackIP(tb testing.TB) string {
	tb.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	tb.Skip("this host has no non-loopback IPv4 address to connect from")
	return ""
}
