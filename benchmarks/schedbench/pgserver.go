package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kalla-dev/kalla/benchmarks/internal/kalladproc"
)

// pgServer is a throwaway Postgres cluster in a temporary folder, for runs
// without --pg-url: initdb, then the postmaster as our child on a free port
// of 127.0.0.1 (as the postgres OS user when we run as root, since Postgres
// refuses to run as root). It is the same recipe as internal/kallatest's,
// which only tests can use.
type pgServer struct {
	URL     string
	base    string
	cmd     *exec.Cmd
	cred    *syscall.Credential
	exited  chan struct{}
	waitErr error
}

// pgSettings are the server's settings: durability off (the data are
// throwaway), and memory for sorts and hashes that suits a benchmark
// machine rather than Postgres' 4MB default.
var pgSettings = []string{
	"listen_addresses=127.0.0.1",
	"fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_wal_size=8GB",
	"shared_buffers=1GB", "work_mem=256MB", "maintenance_work_mem=512MB",
	"max_connections=100", "logging_collector=off", "log_min_messages=warning", "timezone=UTC",
}

// pgBinDir finds initdb and postgres: the newest /usr/lib/postgresql/N/bin
// (Debian's layout), else $PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no Postgres server found in /usr/lib/postgresql/*/bin or $PATH: install it (apt-get install -y postgresql) or pass --pg-url")
}

func startPostgres(ctx context.Context, logf func(string, ...any)) (*pgServer, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	s := &pgServer{}
	tmp := os.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres OS user to run Postgres as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		tmp = "/tmp" // a folder the postgres user can reach
	}
	if s.base, err = os.MkdirTemp(tmp, "schedbench-pg-"); err != nil {
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(s.base, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.remove()
			return nil, err
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = s.base
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		if s.cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		}
		return cmd
	}
	data := filepath.Join(s.base, "data")
	if out, err := run("initdb", "--pgdata", data, "--username", "postgres", "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync").CombinedOutput(); err != nil {
		s.remove()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A free port may be taken between the probe and the bind: try a few.
	for attempt := 1; ; attempt++ {
		err := s.start(ctx, run, data)
		if err == nil {
			logf("started a throwaway Postgres in %s (%s)", s.base, filepath.Base(filepath.Dir(bin)))
			return s, nil
		}
		if attempt == 5 || !strings.Contains(err.Error(), "could not") {
			s.remove()
			return nil, err
		}
	}
}

func (s *pgServer) start(ctx context.Context, run func(string, ...string) *exec.Cmd, data string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", s.base}
	for _, kv := range pgSettings {
		args = append(args, "-c", kv)
	}
	logPath := filepath.Join(s.base, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd = run("postgres", args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// SIGQUIT is Postgres' immediate shutdown: the data are throwaway.
	if s.exited, err = kalladproc.Start(s.cmd, syscall.SIGQUIT, &s.waitErr); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-s.exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited on start: %s", strings.TrimSpace(string(b)))
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		c, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres did not accept connections within a minute: %w", err)
		}
	}
}

func (s *pgServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *pgServer) remove() { _ = os.RemoveAll(s.base) }

// stop ends the server and removes its folder.
func (s *pgServer) stop() {
	s.kill()
	s.remove()
}
