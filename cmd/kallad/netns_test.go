package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace joined to this host by a veth pair, for
// tests that need a client that is not on loopback: hostIP is this host's
// end, nsIP the namespace's. Both addresses exist only on the pair, and the
// namespace has no other route, so no packet leaves the two.
type netns struct {
	name, hostIP, nsIP string
}

// newNetns creates a namespace and its veth pair, removed at the end of
// the test; it skips the test without root or iproute2.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is missing: apt-get install iproute2")
	}
	n := &netns{name: fmt.Sprintf("kt%08x", rand.Uint32())}
	// A /30 of 10.213.0.0/16 that no interface of this host uses yet.
	addrs, err := exec.Command("ip", "-4", "-o", "addr").Output()
	if err != nil {
		t.Fatalf("ip addr: %v", err)
	}
	for n.hostIP == "" {
		x := rand.IntN(1 << 14)
		a, b := x>>6, (x&63)*4
		used := false
		for k := range 4 {
			used = used || strings.Contains(string(addrs), fmt.Sprintf(" 10.213.%d.%d/", a, b+k))
		}
		if !used {
			n.hostIP, n.nsIP = fmt.Sprintf("10.213.%d.%d", a, b+1), fmt.Sprintf("10.213.%d.%d", a, b+2)
		}
	}
	hostEnd, nsEnd := "vh"+n.name, "vn"+n.name
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hostEnd).Run()
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	run("link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd)
	run("link", "set", nsEnd, "netns", n.name)
	run("addr", "add", n.hostIP+"/30", "dev", hostEnd)
	run("link", "set", hostEnd, "up")
	run("netns", "exec", n.name, "ip", "addr", "add", n.nsIP+"/30", "dev", nsEnd)
	run("netns", "exec", n.name, "ip", "link", "set", nsEnd, "up")
	run("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	t.Logf("network namespace %s: %s (here) <-> %s (there)", n.name, n.hostIP, n.nsIP)
	return n
}

// exec is the command prefix that runs a command inside the namespace.
func (n *netns) exec() []string { return []string{"ip", "netns", "exec", n.name} }

// dial connects from inside the namespace: the socket is made by a thread
// moved into it, which then ends with its goroutine (the thread is never
// unlocked, so the Go runtime does not reuse it elsewhere).
func (n *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", n.name, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// httpClient is an HTTP client whose connections come from the namespace.
func (n *netns) httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: n.dial, DisableKeepAlives: true}}
}
