package postgres

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kalla-dev/kalla"
)

// Opener returns a kalla.SourceOpener that opens like Open but reaches only
// the database hosts that hosts allows: every host of the URI (fallbacks
// included) is checked when the job is submitted, and every address again
// when connecting, so a name re-pointed at a refused address after the
// check (DNS rebinding) is refused too. Job connections use TCP only. The
// sources read as cfg says.
func Opener(hosts *kalla.AllowList, cfg Config) kalla.SourceOpener {
	return func(ctx context.Context, uri string) (kalla.Source, error) {
		src, err := open(uri, false, cfg)
		if err != nil {
			return nil, err
		}
		s := src.(*Source)
		if err := restrictHosts(ctx, &s.cfg.Config, hosts); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
}

// restrictHosts checks the hosts of cfg and makes its connections go
// through hosts' dialer. pgx resolves names with LookupFunc before it dials;
// the lookup here hands the name on unresolved, so that the dialer sees it
// and checks the addresses it resolves to itself.
func restrictHosts(ctx context.Context, cfg *pgconn.Config, hosts *kalla.AllowList) error {
	check := func(host string) error {
		if host == "" || host[0] == '/' {
			return nil // a socket folder: refused by the dialer (TCP only)
		}
		if err := hosts.CheckHost(ctx, host); err != nil {
			return kalla.Invalid("uri", "%v", err)
		}
		return nil
	}
	if err := check(cfg.Host); err != nil {
		return err
	}
	for _, fb := range cfg.Fallbacks {
		if err := check(fb.Host); err != nil {
			return err
		}
	}
	// The keep-alive pgx's own dialer uses; ConnectTimeout bounds the
	// dial through the context.
	cfg.DialFunc = hosts.DialContext(&net.Dialer{KeepAlive: 5 * time.Minute})
	cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	return nil
}
