package kallatest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kalla-dev/kalla/internal/pgserver"
)

// The role tests connect as. It has a password (and the server asks for it
// over TCP) so that tests can check that passwords never reach errors or logs.
const (
	PostgresUser     = "kalla"
	PostgresPassword = "kalla-secret-pw"
)

// PostgresURLEnv names a server to use instead of starting one. Its role must
// be allowed to create databases; it is used as given, for every test.
const PostgresURLEnv = "KALLA_TEST_POSTGRES_URL"

// PG is a Postgres server shared by the tests of one test binary.
type PG struct {
	// URL connects to the server's default test database as the test role,
	// password included: postgres://kalla:kalla-secret-pw@127.0.0.1:port/kalla?sslmode=disable.
	URL string
	// Host and Port are where the server listens.
	Host string
	Port int
	// User and Password are the role of URL.
	User     string
	Password string

	admin *pgxpool.Pool // a role that may create databases
	srv   *pgServer     // nil when the server came from PostgresURLEnv

	mainOnce sync.Once
	main     *pgxpool.Pool // connects with URL, for creating schemas
	mainErr  error
}

var (
	pgOnce   sync.Once
	pgShared *PG
	pgErr    error
)

// Postgres returns the test binary's Postgres server, starting it on first
// use (about a second: initdb, then the server on a free port of 127.0.0.1
// with its socket in a private folder, so that test binaries running in
// parallel never collide). It fails tb when no server can be had.
func Postgres(tb testing.TB) *PG {
	tb.Helper()
	pgOnce.Do(func() { pgShared, pgErr = startPG() })
	if pgErr != nil {
		tb.Fatalf("kallatest: %v", pgErr)
	}
	return pgShared
}

// DB is a database (or a schema) of its own for one test.
type DB struct {
	// URL connects to it as the test role, password included. For a schema
	// it sets search_path, so unqualified table names resolve to Schema.
	URL string
	// Database and Schema name where the test's tables go.
	Database string
	Schema   string
	// Pool connects with URL, for seeding and checking.
	Pool *pgxpool.Pool
}

var dbSeq atomic.Int64

// uniqueName returns a name no other test, in this binary or another one
// sharing the server, uses: the process id keeps binaries apart.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), dbSeq.Add(1))
}

// NewDatabase creates an empty database owned by the test role and drops it
// (disconnecting anyone still on it) when tb ends.
func (pg *PG) NewDatabase(tb testing.TB) *DB {
	tb.Helper()
	ctx := context.Background()
	name := uniqueName("kt")
	owner := ""
	if pg.srv != nil {
		owner = " OWNER " + pgx.Identifier{pg.User}.Sanitize()
	}
	if _, err := pg.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+owner); err != nil {
		tb.Fatalf("kallatest: create database %s: %v", name, err)
	}
	u := pg.urlFor(name, nil)
	pool := pg.connect(tb, u)
	tb.Cleanup(func() {
		pool.Close()
		if _, err := pg.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("kallatest: drop database %s: %v", name, err)
		}
	})
	return &DB{URL: u, Database: name, Schema: "public", Pool: pool}
}

// NewSchema creates an empty schema in the server's default test database
// and drops it when tb ends. It is cheaper than NewDatabase (a millisecond
// against tens); its URL puts the schema first on search_path.
func (pg *PG) NewSchema(tb testing.TB) *DB {
	tb.Helper()
	ctx := context.Background()
	name := uniqueName("ks")
	base, err := url.Parse(pg.URL)
	if err != nil {
		tb.Fatalf("kallatest: parse server URL: %v", err)
	}
	dbName := strings.TrimPrefix(base.Path, "/")
	if _, err := pg.mainPool(tb).Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("kallatest: create schema %s: %v", name, err)
	}
	u := pg.urlFor(dbName, url.Values{"search_path": {name}})
	pool := pg.connect(tb, u)
	tb.Cleanup(func() {
		pool.Close()
		if _, err := pg.mainPool(tb).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("kallatest: drop schema %s: %v", name, err)
		}
	})
	return &DB{URL: u, Database: dbName, Schema: name, Pool: pool}
}

// Exec runs sql (with args as parameters) and fails tb on error.
func (db *DB) Exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("kallatest: exec %q: %v", clipSQL(sql), err)
	}
}

// TableURI returns the Kalla source URI of table in this database or schema:
// URL with ?table=schema.table.
func (db *DB) TableURI(table string) string {
	u, err := url.Parse(db.URL)
	if err != nil {
		panic(err) // URL was built by this package
	}
	q := u.Query()
	q.Set("table", db.Schema+"."+table)
	u.RawQuery = q.Encode()
	return u.String()
}

func clipSQL(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// urlFor returns pg.URL pointed at database name, with extra query params.
func (pg *PG) urlFor(name string, extra url.Values) string {
	u, err := url.Parse(pg.URL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	q := u.Query()
	for k, vs := range extra {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// mainPool returns a pool on URL, shared by the tests of the binary.
func (pg *PG) mainPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pg.mainOnce.Do(func() {
		pg.main, pg.mainErr = pgxpool.New(context.Background(), pg.URL)
		if pg.mainErr == nil {
			AtExit(pg.main.Close)
		}
	})
	if pg.mainErr != nil {
		tb.Fatalf("kallatest: connect to postgres at %s:%d: %v", pg.Host, pg.Port, pg.mainErr)
	}
	return pg.main
}

func (pg *PG) connect(tb testing.TB, connURL string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), connURL)
	if err != nil {
		tb.Fatalf("kallatest: connect to postgres at %s:%d: %v", pg.Host, pg.Port, err)
	}
	return pool
}

func startPG() (*PG, error) {
	if env := os.Getenv(PostgresURLEnv); env != "" {
		return externalPG(env)
	}
	srv, err := startServer()
	if err != nil {
		return nil, err
	}
	AtExit(srv.stop)
	pg, err := srv.setup()
	if err != nil {
		srv.stop()
		return nil, err
	}
	return pg, nil
}

func externalPG(raw string) (*PG, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a URL", PostgresURLEnv)
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", PostgresURLEnv, err)
	}
	admin, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", PostgresURLEnv, err)
	}
	if err := admin.Ping(context.Background()); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d (%s): %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, PostgresURLEnv, err)
	}
	AtExit(admin.Close)
	pw, _ := u.User.Password()
	return &PG{
		URL:      raw,
		Host:     cfg.ConnConfig.Host,
		Port:     int(cfg.ConnConfig.Port),
		User:     cfg.ConnConfig.User,
		Password: pw,
		admin:    admin,
	}, nil
}

// pgServer is the tests' throwaway Postgres, with a pool on its superuser.
type pgServer struct {
	*pgserver.Server
	admin *pgxpool.Pool
	once  sync.Once
}

// startServer starts the server: passwords asked over TCP, and connections
// enough for test binaries running in parallel.
func startServer() (*pgServer, error) {
	srv, err := pgserver.Start(context.Background(), pgserver.Options{
		Prefix:   "kallatest-pg-",
		HostAuth: "scram-sha-256",
		Settings: []string{"max_connections=300", "max_wal_size=4GB"},
	})
	if errors.Is(err, pgserver.ErrNotInstalled) {
		return nil, fmt.Errorf("%w, or set %s to a server whose role may create databases", err, PostgresURLEnv)
	}
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(srv.AdminConnString())
	if err != nil {
		srv.Stop()
		return nil, err
	}
	cfg.MaxConns = 8
	admin, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("connect to the test server: %w", err)
	}
	return &pgServer{Server: srv, admin: admin}, nil
}

// setup creates the test role (with its password) and its default database.
func (s *pgServer) setup() (*PG, error) {
	ctx := context.Background()
	for _, q := range []string{
		"CREATE ROLE " + PostgresUser + " LOGIN CREATEDB PASSWORD '" + PostgresPassword + "'",
		"CREATE DATABASE " + PostgresUser + " OWNER " + PostgresUser,
	} {
		if _, err := s.admin.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("set up test server: %w", err)
		}
	}
	return &PG{
		URL:      s.URL(url.UserPassword(PostgresUser, PostgresPassword), PostgresUser),
		Host:     "127.0.0.1",
		Port:     s.Port,
		User:     PostgresUser,
		Password: PostgresPassword,
		admin:    s.admin,
		srv:      s,
	}, nil
}

// stop closes the pool, shuts the server down and removes its folder.
func (s *pgServer) stop() {
	s.once.Do(func() {
		s.admin.Close()
		s.Server.Stop()
	})
}
