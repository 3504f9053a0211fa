// Package pgserver runs a throwaway Postgres cluster in a temporary folder:
// initdb, then the postmaster as this process's child on a free port of
// 127.0.0.1, as the postgres OS user when this process runs as root (Postgres
// refuses to run as root). The tests (through internal/kallatest) and
// benchmarks/schedbench both start one; this is their one recipe, outside
// kallatest because kallatest imports testing.
package pgserver

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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kalla-dev/kalla/internal/childproc"
)

// ErrNotInstalled is returned (wrapped) when no Postgres server binaries are
// found, so that callers can say how else to get a server.
var ErrNotInstalled = errors.New("no Postgres server found (looked for initdb in /usr/lib/postgresql/*/bin and $PATH): install it with `apt-get install -y postgresql`")

// Options shape a server.
type Options struct {
	// Prefix starts the name of the temporary folder. Folders with the same
	// prefix whose process died without removing them are removed.
	Prefix string
	// HostAuth is initdb's --auth-host for TCP connections: "trust" lets
	// the postgres superuser in without a password, "scram-sha-256" asks
	// every role for its password. The Unix socket always trusts.
	HostAuth string
	// Settings are extra name=value server settings, after the defaults of
	// a throwaway server (no fsync, UTC, only warnings logged).
	Settings []string
}

// baseSettings suit a server whose data are thrown away: durability off.
var baseSettings = []string{
	"listen_addresses=127.0.0.1",
	"fsync=off", "synchronous_commit=off", "full_page_writes=off",
	"logging_collector=off", "log_min_messages=warning", "timezone=UTC",
}

// Server is a running throwaway Postgres.
type Server struct {
	// Dir is the temporary folder: data/, sock/, log, owner.pid.
	Dir string
	// BinDir holds initdb and postgres.
	BinDir string
	// Port is the TCP port on 127.0.0.1.
	Port int

	cred    *syscall.Credential // the postgres OS user, when we run as root
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the postmaster exits
	waitErr error
	once    sync.Once
}

// BinDir finds initdb and postgres: the newest /usr/lib/postgresql/N/bin
// (Debian's layout), else $PATH.
func BinDir() (string, error) {
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
	return "", ErrNotInstalled
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start creates and starts a server, and returns once it accepts
// connections. Stop ends it; should this process die first, the postmaster
// gets SIGQUIT and the next Start with the same prefix removes the folder.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{BinDir: bin}
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
	sweepStale(tmp, o.Prefix)
	if s.Dir, err = os.MkdirTemp(tmp, o.Prefix); err != nil {
		return nil, fmt.Errorf("create server folder: %w", err)
	}
	if err := s.prepare(o); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	// A free port can be taken by another process between our probe and
	// the server's bind: try a few.
	for attempt := 0; ; attempt++ {
		err = s.start(ctx, o.Settings)
		if err == nil {
			return s, nil
		}
		if attempt == 4 || !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			os.RemoveAll(s.Dir)
			return nil, err
		}
	}
}

// prepare fills the folder: the owner's pid, the socket folder, and the
// cluster made by initdb.
func (s *Server) prepare(o Options) error {
	if err := os.WriteFile(filepath.Join(s.Dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner.pid: %w", err)
	}
	if err := os.Mkdir(s.socketDir(), 0o700); err != nil {
		return fmt.Errorf("create socket folder: %w", err)
	}
	if s.cred != nil {
		for _, p := range []string{s.Dir, s.socketDir()} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return fmt.Errorf("give %s to the postgres user: %w", p, err)
			}
		}
	}
	cmd := s.command("initdb",
		"--pgdata", filepath.Join(s.Dir, "data"),
		"--username", "postgres",
		"--auth-local", "trust",
		"--auth-host", o.HostAuth,
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
		"--no-instructions",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", s.Dir, err, out)
	}
	return nil
}

// sweepStale removes the folders of servers whose process died without
// stopping them (killed before its cleanup could run).
func sweepStale(tmp, prefix string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, prefix+"*"))
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

func (s *Server) socketDir() string { return filepath.Join(s.Dir, "sock") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// start runs the postmaster on a fresh port and waits until it accepts
// connections. The postmaster is our child (not pg_ctl's), started with a
// parent-death signal, so it dies with this process even when no cleanup
// runs.
func (s *Server) start(ctx context.Context, settings []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	logPath := filepath.Join(s.Dir, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()
	args := []string{"-D", filepath.Join(s.Dir, "data"), "-p", strconv.Itoa(s.Port), "-c", "unix_socket_directories=" + s.socketDir()}
	for _, kv := range append(baseSettings[:len(baseSettings):len(baseSettings)], settings...) {
		args = append(args, "-c", kv)
	}
	cmd := s.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true // ^C reaches us, and we stop it

	// SIGQUIT is Postgres's immediate shutdown: the data are throwaway.
	exited, err := childproc.Start(cmd, syscall.SIGQUIT, &s.waitErr)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited on start (port %d): %s", s.Port, strings.TrimSpace(string(b)))
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, s.AdminConnString())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within a minute: %v\n%s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AdminConnString connects as the postgres superuser over the Unix socket,
// which needs no password whatever Options.HostAuth says.
func (s *Server) AdminConnString() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", s.socketDir(), s.Port)
}

// URL is a postgres:// URL for user on database over TCP, for clients that
// cannot reach the socket (such as other processes' connection strings).
func (s *Server) URL(user *url.Userinfo, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     user,
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	childproc.Stop(s.cmd, s.exited, syscall.SIGQUIT, 10*time.Second)
}

// Stop shuts the server down and removes its folder. It may be called more
// than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.kill()
		os.RemoveAll(s.Dir)
	})
}
