package kalla_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

func hostList(t *testing.T, spec string) *kalla.AllowList {
	t.Helper()
	a, err := kalla.ParseHostList("KALLA_ALLOW_DB_HOSTS", spec)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllowListParseErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parse func(string, string) (*kalla.AllowList, error)
		spec  string
	}{
		{kalla.ParseHostList, "db, 10.0.0.0/33"},
		{kalla.ParseHostList, "http://db"},
		{kalla.ParseHostList, "db, *"},
		{kalla.ParseHostList, "[db"},
		{kalla.ParseNameList, "bucket/prefix"},
	} {
		_, err := tc.parse("KALLA_ALLOW_X", tc.spec)
		if err == nil || !strings.Contains(err.Error(), "KALLA_ALLOW_X") {
			t.Errorf("%q: got %v, want an error naming KALLA_ALLOW_X", tc.spec, err)
		}
	}
}

// The default list keeps local use working and refuses every spelling of
// the cloud metadata address.
func TestAllowListDefaultRefusesMetadataAddresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, a := range []*kalla.AllowList{nil, hostList(t, "*"), hostList(t, "")} {
		for _, ok := range []string{"127.0.0.1", "::1", "localhost", "10.1.2.3", "[::1]", "192.168.0.10"} {
			if err := a.CheckHost(ctx, ok); err != nil {
				t.Errorf("%s: %v", ok, err)
			}
		}
		for _, bad := range []string{"169.254.169.254", "[169.254.169.254]", "::ffff:169.254.169.254", "[::ffff:a9fe:a9fe]",
			"fe80::1", "fe80::1%eth0", "fd00:ec2::254", "169.254.0.1"} {
			err := a.CheckHost(ctx, bad)
			if !errors.Is(err, kalla.ErrNotAllowed) || !strings.Contains(err.Error(), "link-local") {
				t.Errorf("%s: got %v, want a link-local refusal", bad, err)
			}
		}
	}
	// Listed as a CIDR, it is reachable: tightening and loosening are
	// configuration.
	if err := hostList(t, "169.254.169.254/32").CheckHost(ctx, "169.254.169.254"); err != nil {
		t.Errorf("explicit CIDR: %v", err)
	}
	// A name entry never reaches it.
	dns := kallatest.StartDNS(t)
	dns.Set("metadata.test", "169.254.169.254")
	named := hostList(t, "metadata.test")
	named.Resolver = dns.Resolver()
	if err := named.CheckHost(ctx, "metadata.test"); !errors.Is(err, kalla.ErrNotAllowed) {
		t.Errorf("name entry resolving to link-local: got %v", err)
	}
}

func TestAllowListHostEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dns := kallatest.StartDNS(t)
	dns.Set("db.corp.example", "10.0.0.5")
	dns.Set("other.example", "10.0.0.6")
	dns.Set("outside.example", "192.0.2.7")
	a := hostList(t, "db, *.corp.example, 10.0.0.0/24, 2001:db8::/32")
	a.Resolver = dns.Resolver()
	allowed := []string{"db", "DB", "db.", "x.y.corp.example", "10.0.0.200", "2001:db8::1", "other.example"}
	refused := []string{"db2", "corp.example", "10.0.1.1", "127.0.0.1", "outside.example", "unknown.example"}
	for _, h := range allowed {
		if err := a.CheckHost(ctx, h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, h := range refused {
		err := a.CheckHost(ctx, h)
		if !errors.Is(err, kalla.ErrNotAllowed) || !strings.Contains(err.Error(), "KALLA_ALLOW_DB_HOSTS") {
			t.Errorf("%s: got %v, want a refusal naming KALLA_ALLOW_DB_HOSTS", h, err)
		}
	}
	if err := hostList(t, "none").CheckHost(ctx, "127.0.0.1"); !errors.Is(err, kalla.ErrNotAllowed) {
		t.Errorf("none: got %v", err)
	}
}

// The dial checks the address it connects to, not the one seen at
// submission: a name re-pointed at the metadata address afterwards is
// refused without a connection attempt.
func TestAllowListDialChecksTheResolvedAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	dns := kallatest.StartDNS(t)
	dns.Set("rebind.test", "127.0.0.1")
	for _, spec := range []string{"*", "rebind.test", "127.0.0.0/8"} {
		a := hostList(t, spec)
		a.Resolver = dns.Resolver()
		dial := a.DialContext(&net.Dialer{})
		dns.Set("rebind.test", "127.0.0.1")
		if err := a.CheckHost(ctx, "rebind.test"); err != nil {
			t.Fatalf("%s: submission: %v", spec, err)
		}
		c, err := dial(ctx, "tcp", net.JoinHostPort("rebind.test", port))
		if err != nil {
			t.Fatalf("%s: dial before rebinding: %v", spec, err)
		}
		c.Close()
		// pgx dials the bare address of a connection to cancel its query.
		c, err = dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Fatalf("%s: dial of the address a name gave: %v", spec, err)
		}
		c.Close()

		dns.Set("rebind.test", "169.254.169.254")
		_, err = dial(ctx, "tcp", net.JoinHostPort("rebind.test", "80"))
		var na *kalla.NotAllowedError
		if !errors.As(err, &na) || !strings.Contains(err.Error(), "169.254.169.254") {
			t.Errorf("%s: dial after rebinding: got %v, want a refusal of 169.254.169.254", spec, err)
		}
		if _, err := dial(ctx, "unix", "/var/run/postgresql/.s.PGSQL.5432"); err == nil || !strings.Contains(err.Error(), "only TCP") {
			t.Errorf("%s: unix socket: got %v", spec, err)
		}
	}

	// Under a name-only list, an address the name did not give is refused.
	a := hostList(t, "rebind.test")
	a.Resolver = dns.Resolver()
	if _, err := a.DialContext(&net.Dialer{})(ctx, "tcp", net.JoinHostPort("127.0.0.1", port)); !errors.Is(err, kalla.ErrNotAllowed) {
		t.Errorf("bare address under a name list: got %v", err)
	}
	if err := a.CheckAddr("", netip.MustParseAddr("127.0.0.1")); !errors.Is(err, kalla.ErrNotAllowed) {
		t.Errorf("CheckAddr: got %v", err)
	}
}

func TestAllowListPaths(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	allowed := filepath.Join(base, "allowed")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(allowed, "in"), filepath.Join(outside, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(allowed, "in", "a.csv"), filepath.Join(outside, "secret.csv"), filepath.Join(outside, "sub", "x.csv")} {
		if err := os.WriteFile(f, []byte("id\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Links inside the allowed folder: to a file outside, to a folder
	// outside (whose ".." is outside too), and to a file inside.
	links := map[string]string{
		"escape.csv": filepath.Join(outside, "secret.csv"),
		"dir":        filepath.Join(outside, "sub"),
		"inside.csv": filepath.Join(allowed, "in", "a.csv"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(allowed, name)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := kalla.ParsePathList("KALLA_ALLOW_PATHS", allowed)
	if err != nil {
		t.Fatal(err)
	}
	ok := []string{
		filepath.Join(allowed, "in", "a.csv"),
		filepath.Join(allowed, "inside.csv"),
		filepath.Join(allowed, "new", "folder"), // an output folder not created yet
		allowed,
		filepath.Join(outside, "..", "allowed", "in"),
	}
	bad := []string{
		filepath.Join(outside, "secret.csv"),
		filepath.Join(allowed, "escape.csv"),
		filepath.Join(allowed, "dir", "x.csv"),
		filepath.Join(allowed, "dir") + "/../secret.csv", // ".." after a link is the target's parent
		filepath.Join(allowed, "new") + "/../../outside/secret.csv",
		allowed + "-twin",
		"/etc/passwd",
	}
	for _, p := range ok {
		if err := a.CheckPath(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range bad {
		err := a.CheckPath(p)
		if !errors.Is(err, kalla.ErrNotAllowed) || !strings.Contains(err.Error(), "KALLA_ALLOW_PATHS") {
			t.Errorf("%s: got %v, want a refusal naming KALLA_ALLOW_PATHS", p, err)
		}
	}
	var nilList *kalla.AllowList
	if err := nilList.CheckPath("/etc/passwd"); err != nil {
		t.Errorf("nil list: %v", err)
	}
}

func TestAllowListNames(t *testing.T) {
	t.Parallel()
	a, err := kalla.ParseNameList("KALLA_ALLOW_S3_BUCKETS", "results, kalla-*")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"results", "kalla-in", "kalla-out"} {
		if err := a.CheckName("bucket", n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"results2", "other", "kalla"} {
		if err := a.CheckName("bucket", n); !errors.Is(err, kalla.ErrNotAllowed) {
			t.Errorf("%s: got %v", n, err)
		}
	}
}
