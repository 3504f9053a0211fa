package authlimit

import (
	"net/http"
	"strings"
	"testing"
)

// ClientAddr believes X-Forwarded-For only from a trusted proxy, and only
// the entries trusted proxies appended: the rightmost untrusted one.
func TestProxyClientAddr(t *testing.T) {
	nets, err := ParseTrustedProxies(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{TrustedProxies: nets})
	for _, c := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"10.1.2.3:5000", nil, "10.1.2.3"},
		{"10.1.2.3:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"192.168.1.7:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"[fd00::1]:5000", []string{"2001:db8::9"}, "2001:db8::9"},
		{"[::ffff:10.0.0.1]:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		// Not a trusted proxy: the header is not read.
		{"192.168.1.8:5000", []string{"203.0.113.7"}, "192.168.1.8:5000"},
		{"203.0.113.9:5000", []string{"10.0.0.1"}, "203.0.113.9:5000"},
		// A made-up entry left of the real client is ignored.
		{"10.1.2.3:5000", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		// A chain of trusted proxies is walked through.
		{"10.1.2.3:5000", []string{"198.51.100.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"10.1.2.3:5000", []string{"198.51.100.1, 203.0.113.7", "10.9.9.9"}, "203.0.113.7"},
		{"10.1.2.3:5000", []string{"10.5.5.5, 10.9.9.9"}, "10.5.5.5"},
		// Entries with ports, as some proxies write them.
		{"10.1.2.3:5000", []string{"203.0.113.7:4444"}, "203.0.113.7"},
		{"10.1.2.3:5000", []string{"[2001:db8::9]:4444"}, "2001:db8::9"},
		// A malformed entry stops the walk at the last trusted hop.
		{"10.1.2.3:5000", []string{"203.0.113.7, unknown"}, "10.1.2.3"},
		{"10.1.2.3:5000", []string{"203.0.113.7, garbage, 10.9.9.9"}, "10.9.9.9"},
		{"10.1.2.3:5000", []string{""}, "10.1.2.3"},
	} {
		r, err := http.NewRequest("GET", "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := l.ClientAddr(r); got != c.want {
			t.Errorf("from %s with X-Forwarded-For %q: %q, want %q", c.remote, c.xff, got, c.want)
		}
	}
	// Without trusted proxies the header is never read.
	r, _ := http.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := New(Config{}).ClientAddr(r); got != r.RemoteAddr {
		t.Errorf("no trusted proxies: %q, want the connection's address", got)
	}
}

func TestProxyParseErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.300", "proxy.local", "10.0.0.0/8,,fe80::1%eth0", "10.0.0.0/8; 10.1.0.0/16"} {
		_, err := ParseTrustedProxies(bad)
		if err == nil {
			t.Errorf("%q: no error", bad)
			continue
		}
		if name := strings.TrimSpace(strings.Split(bad, ",")[len(strings.Split(bad, ","))-1]); !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("%q: error %q does not name %q", bad, err, name)
		}
	}
	if nets, err := ParseTrustedProxies(""); err != nil || len(nets) != 0 {
		t.Errorf("empty: %v %v, want no proxies", nets, err)
	}
}
