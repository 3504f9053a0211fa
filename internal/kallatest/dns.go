package kallatest

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// DNS is a DNS server on 127.0.0.1 (UDP) that answers A and AAAA queries
// from a table the test can change at any time, to re-point a name between
// a job's submission and its connection (DNS rebinding). Unknown names get
// NXDOMAIN. It speaks the real protocol to Go's resolver; point one at it
// with Resolver.
type DNS struct {
	// Addr is the server's host:port.
	Addr string

	conn  net.PacketConn
	mu    sync.Mutex
	names map[string][]netip.Addr
}

// StartDNS starts a DNS server, stopped when tb ends.
func StartDNS(tb testing.TB) *DNS {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("kallatest: start dns: %v", err)
	}
	d := &DNS{Addr: conn.LocalAddr().String(), conn: conn, names: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() { defer close(done); d.serve() }()
	tb.Cleanup(func() { conn.Close(); <-done })
	return d
}

// Set makes name resolve to addrs (none: NXDOMAIN).
func (d *DNS) Set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	d.names[strings.ToLower(strings.TrimSuffix(name, "."))] = ips
}

// Resolver returns a resolver that asks only this server.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", d.Addr)
	}}
}

func (d *DNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			_, _ = d.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query, or nil for a malformed one.
func (d *DNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]

	d.mu.Lock()
	ips, known := d.names[strings.ToLower(strings.Join(labels, "."))]
	d.mu.Unlock()

	resp := make([]byte, 12, 512)
	copy(resp, q[:2])       // id
	flags := uint16(0x8180) // response, recursion desired and available
	flags |= binary.BigEndian.Uint16(q[2:4]) & 0x0100
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(resp[2:4], flags)
	binary.BigEndian.PutUint16(resp[4:6], 1) // one question
	resp = append(resp, question...)
	var count uint16
	for _, ip := range ips {
		var rtype uint16
		switch {
		case qtype == 1 && ip.Is4():
			rtype = 1
		case qtype == 28 && ip.Is6():
			rtype = 28
		default:
			continue
		}
		raw := ip.AsSlice()
		resp = append(resp, 0xc0, 12) // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, rtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // IN
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL 0: ask again every time
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(raw)))
		resp = append(resp, raw...)
		count++
	}
	binary.BigEndian.PutUint16(resp[6:8], count)
	return resp
}
