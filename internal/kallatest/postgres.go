package kallatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// pgServer is a throwaway Postgres cluster in a temporary folder.
type pgServer struct {
	base   string // temporary folder: data/, sock/, log, owner.pid
	bin    string // folder holding initdb and postgres
	port   int
	cred   *syscall.Credential // the postgres OS user, when we run as root
	cmd    *exec.Cmd
	exited chan struct{} // closed when the postmaster exits
	admin  *pgxpool.Pool
	once   sync.Once
}

// postgresBinDir finds initdb and postgres: the newest /usr/lib/postgresql/N/bin
// (Debian's layout), else $PATH.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no Postgres server found (looked for initdb in /usr/lib/postgresql/*/bin and $PATH): " +
		"install it with `apt-get install -y postgresql`, or set " + PostgresURLEnv + " to a server whose role may create databases")
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func startServer() (*pgServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin}
	tmp := os.TempDir()
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root: run them as the
		// postgres OS user, in a folder it owns and can reach.
		pgUser, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres OS user to run the server as (install it with `apt-get install -y postgresql`): %w", err)
		}
		uid, _ := strconv.Atoi(pgUser.Uid)
		gid, _ := strconv.Atoi(pgUser.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if st, err := os.Stat(tmp); err != nil || st.Mode().Perm()&0o001 == 0 {
			tmp = "/tmp"
		}
	}
	sweepStale(tmp)
	if s.base, err = os.MkdirTemp(tmp, "kallatest-pg-"); err != nil {
		return nil, fmt.Errorf("create server folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.base, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(s.base, "sock"), 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, p := range []string{s.base, filepath.Join(s.base, "sock")} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return nil, fmt.Errorf("give %s to the postgres user: %w", p, err)
			}
		}
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(s.base)
		return nil, err
	}
	// A free port can be taken by another test binary between our probe and
	// the server's bind: try a few.
	for attempt := 0; ; attempt++ {
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 4 || !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			os.RemoveAll(s.base)
			return nil, err
		}
	}
}

// sweepStale removes the folders of servers whose test binary died without
// stopping them (killed before Main could run its cleanups).
func sweepStale(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "kallatest-pg-*"))
	for _, d := range dirs {
		if alive(filepath.Join(d, "owner.pid")) || alive(filepath.Join(d, "data", "postmaster.pid")) {
			continue
		}
		if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > time.Minute {
			os.RemoveAll(d)
		}
	}
}

// alive reports whether the process whose id is on line 1 of file runs.
func alive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.base
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *pgServer) initdb() error {
	cmd := s.command("initdb",
		"--pgdata", filepath.Join(s.base, "data"),
		"--username", "postgres",
		"--auth-local", "trust",
		"--auth-host", "scram-sha-256",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
		"--no-instructions",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", s.base, err, out)
	}
	return nil
}

// start runs the postmaster on a fresh port and waits until it accepts
// connections. The postmaster is our child (not pg_ctl's), started with a
// parent-death signal, so it dies with the test binary even when Main's
// cleanup never runs.
func (s *pgServer) start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	logPath := filepath.Join(s.base, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := s.command("postgres",
		"-D", filepath.Join(s.base, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+filepath.Join(s.base, "sock"),
		"-c", "max_connections=300",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_wal_size=4GB",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
		"-c", "timezone=UTC",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// SIGQUIT is Postgres's immediate shutdown: the data are throwaway.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.SysProcAttr.Setpgid = true // ^C in go test reaches us, and we stop it

	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, so
		// keep this goroutine on its thread for the server's lifetime.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd, s.exited = cmd, exited

	connStr := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", filepath.Join(s.base, "sock"), s.port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited on start (port %d): %s", s.port, strings.TrimSpace(string(b)))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, connStr)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			s.kill()
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within 30s: %v\n%s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg, err := pgxpool.ParseConfig(connStr)
	if err != nil {
		return err
	}
	cfg.MaxConns = 8
	if s.admin, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		s.kill()
		return err
	}
	return nil
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
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(PostgresUser, PostgresPassword),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + PostgresUser,
		RawQuery: "sslmode=disable",
	}
	return &PG{
		URL:      u.String(),
		Host:     "127.0.0.1",
		Port:     s.port,
		User:     PostgresUser,
		Password: PostgresPassword,
		admin:    s.admin,
		srv:      s,
	}, nil
}

func (s *pgServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
}

// stop shuts the server down and removes its folder.
func (s *pgServer) stop() {
	s.once.Do(func() {
		if s.admin != nil {
			s.admin.Close()
		}
		s.kill()
		os.RemoveAll(s.base)
	})
}
