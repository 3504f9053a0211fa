package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// withHost returns uri with its host replaced.
func withHost(t *testing.T, uri, host string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host + ":" + u.Port()
	return u.String()
}

// Database hosts are checked when the source is opened and on every
// connection, on the address dialled: a name re-pointed at the metadata
// address after the check is refused, not connected to.
func TestOpenerRestrictsDatabaseHosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	uri := b.db.TableURI("t")
	dns := kallatest.StartDNS(t)
	dns.Set("pg.test", "127.0.0.1")

	hosts, err := kalla.ParseHostList("KALLA_ALLOW_DB_HOSTS", "*")
	if err != nil {
		t.Fatal(err)
	}
	hosts.Resolver = dns.Resolver()
	open := Opener(hosts, Config{})

	// The default list reaches the local test server, by address and by
	// name, through the checking dialer.
	for _, u := range []string{uri, withHost(t, uri, "pg.test")} {
		src, err := open(ctx, u)
		if err != nil {
			t.Fatalf("open %s: %v", kalla.RedactURI(u), err)
		}
		if _, err := src.(*Source).Columns(ctx); err != nil {
			t.Fatalf("columns %s: %v", kalla.RedactURI(u), err)
		}
		src.Close()
	}

	// Refused at open: a link-local address, and a name that resolves
	// to one.
	dns.Set("metadata.test", "169.254.169.254")
	for _, h := range []string{"169.254.169.254", "metadata.test", "[fe80::1]"} {
		_, err := open(ctx, withHost(t, uri, h))
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "uri" || !strings.Contains(v.Message, "link-local") {
			t.Errorf("%s: got %v, want a uri error saying link-local", h, err)
		}
	}

	// Other ways of naming a host: the host parameter, a second host.
	for _, u := range []string{
		"postgres://kalla:pw@/erp?host=169.254.169.254&table=t",
		"postgres://kalla:pw@127.0.0.1:5432,169.254.169.254:5432/erp?table=t",
	} {
		if _, err := open(ctx, u); err == nil || !strings.Contains(err.Error(), "link-local") {
			t.Errorf("%s: got %v, want a link-local refusal", u, err)
		}
	}

	// Accepted while pg.test is local, re-pointed before connecting.
	src, err := open(ctx, withHost(t, uri, "pg.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dns.Set("pg.test", "169.254.169.254")
	_, err = src.(*Source).Columns(ctx)
	if !errors.Is(err, kalla.ErrNotAllowed) || !strings.Contains(err.Error(), "169.254.169.254") {
		t.Errorf("after rebinding: got %v, want a refusal of 169.254.169.254", err)
	}

	// A tighter list refuses the local server.
	tight, err := kalla.ParseHostList("KALLA_ALLOW_DB_HOSTS", "10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Opener(tight, Config{})(ctx, uri); err == nil || !strings.Contains(err.Error(), "KALLA_ALLOW_DB_HOSTS") {
		t.Errorf("tight list: got %v", err)
	}
}
