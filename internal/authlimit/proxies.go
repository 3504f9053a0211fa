package authlimit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a comma-separated list of CIDRs or single IP
// addresses (10.0.0.0/8, 192.168.1.7, fd00::/8). An empty list trusts no
// proxy. A bad entry is an error naming it, so that a typo does not
// silently leave every client behind the proxy in one bucket.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is not a CIDR such as 10.0.0.0/8: %w", f, err)
			}
			nets = append(nets, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q is not an IP address or a CIDR such as 10.0.0.0/8", f)
		}
		a = a.Unmap()
		nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return nets, nil
}

// ClientAddr is the address r's attempts are counted by. It is the
// connection's address, unless that is a trusted proxy
// (Config.TrustedProxies): then it is the rightmost X-Forwarded-For entry
// that is not itself a trusted proxy. The walk goes from the right because
// each proxy appends the address it saw, so only the entries our own
// proxies added can be believed; anything to their left was sent by the
// client and may be made up. A malformed entry stops the walk at the last
// trusted hop. A client that is not a trusted proxy cannot pick its bucket
// with the header: it is not read.
func (l *Limiter) ClientAddr(r *http.Request) string {
	hop, ok := l.trustedAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	var entries []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(h, ",")...)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parseForwarded(entries[i])
		if !ok {
			break
		}
		hop = a
		if !l.trusted(a) {
			break
		}
	}
	return hop.String()
}

// trustedAddr parses a RemoteAddr and reports whether it is a trusted
// proxy.
func (l *Limiter) trustedAddr(remoteAddr string) (netip.Addr, bool) {
	if len(l.cfg.TrustedProxies) == 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().WithZone("").Unmap()
	return a, l.trusted(a)
}

func (l *Limiter) trusted(a netip.Addr) bool {
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwarded reads one X-Forwarded-For entry: an IP address, or one
// with a port as some proxies write it (1.2.3.4:5678, [::1]:5678).
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}
