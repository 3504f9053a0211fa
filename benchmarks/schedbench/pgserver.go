package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/kalla-dev/kalla/internal/pgserver"
)

// pgSettings are the server's settings beyond a throwaway server's (no
// durability): memory for sorts and hashes that suits a benchmark machine
// rather than Postgres' 4MB default.
var pgSettings = []string{
	"max_wal_size=8GB", "shared_buffers=1GB", "work_mem=256MB", "maintenance_work_mem=512MB", "max_connections=100",
}

// startPostgres starts a throwaway Postgres for runs without --pg-url. It
// trusts TCP connections, so its URL needs no password: the seeding, the
// scheduler's jobs and the Postgres runs all use it.
func startPostgres(ctx context.Context, logf func(string, ...any)) (srv *pgserver.Server, pgURL string, err error) {
	srv, err = pgserver.Start(ctx, pgserver.Options{Prefix: "schedbench-pg-", HostAuth: "trust", Settings: pgSettings})
	if errors.Is(err, pgserver.ErrNotInstalled) {
		return nil, "", fmt.Errorf("%w, or pass --pg-url", err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("start Postgres: %w", err)
	}
	logf("started a throwaway Postgres in %s (%s)", srv.Dir, filepath.Base(filepath.Dir(srv.BinDir)))
	return srv, srv.URL(url.User("postgres"), "postgres"), nil
}
