// Package cluster is Kalla's durable fabric on NATS JetStream: the job store
// (a key-value bucket), the task queue (a work-queue stream) and the worker
// that takes tasks from the queue and runs them. The NATS server is embedded
// in `kallad scheduler` (file storage under --data-dir) or external (--nats-url).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// DataDir holds JetStream's files; it is created if missing.
	DataDir string
	// Host and Port are where executors and NATS clients connect; Port -1
	// picks a free port (tests).
	Host string
	Port int
	// Token, if set, is required from every NATS client (executors, and
	// this process's own connection).
	Token string
	// NKeys, if set, are the public user NKEYs (U...) allowed in; each
	// client proves it holds the seed by signing the server's nonce, so no
	// secret crosses the wire. Exclusive with Token.
	NKeys []string
	// TLSCertFile and TLSKeyFile, if set, make the cluster port speak TLS
	// only. TLSCAFile, if set too, makes it require a client certificate
	// signed by that CA (mutual TLS), which then authenticates clients.
	TLSCertFile, TLSKeyFile, TLSCAFile string
	// Without Token, NKeys or TLSCAFile the port is in protected mode (see
	// Protected): job records hold source URIs with their passwords, and
	// whoever joins may run tasks, so nobody off this host gets in.
	// StoreKey, if set, encrypts JetStream's files (job records and task
	// payloads, which may hold a client's database password) at rest. The
	// same key must be given at every start: without it the streams cannot
	// be read.
	StoreKey string
	// ReadyTimeout bounds the wait for the server to accept connections.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

func (c *ServerConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("server config: DataDir is required")
	}
	if c.Port < -1 || c.Port > 65535 {
		return fmt.Errorf("server config: port %d out of range", c.Port)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c.validateAuth()
}

// Server is an embedded NATS server with JetStream on file storage.
type Server struct {
	cfg ServerConfig
	ns  *server.Server
	// own are the options of this process's own connection.
	own []nats.Option
}

// NewServer validates cfg; Start starts the server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg}, nil
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(ctx context.Context) error {
	if s.ns != nil {
		return errors.New("nats server already started")
	}
	dir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	opts := &server.Options{
		// A fixed name keeps JetStream's on-disk state valid across
		// restarts.
		ServerName: "kallad",
		Host:       s.cfg.Host,
		Port:       s.cfg.Port,
		JetStream:  true,
		StoreDir:   dir,
		// kallad owns the process's signals.
		NoSigs:       true,
		JetStreamKey: s.cfg.StoreKey,
	}
	if s.own, err = s.applyAuth(opts); err != nil {
		return err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("create nats server: %w", err)
	}
	log := s.cfg.Logger.With("component", "nats")
	ns.SetLoggerV2(&slogAdapter{log: log, shutdown: ns.Shutdown}, log.Enabled(ctx, slog.LevelDebug), false, false)
	ns.Start()
	if !ns.ReadyForConnections(s.cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("nats server not ready after %s", s.cfg.ReadyTimeout)
	}
	s.ns = ns
	s.cfg.Logger.Info("nats server started", "url", ns.ClientURL(), "data_dir", dir, "tls", s.cfg.TLSCertFile != "", "protected", s.cfg.Protected())
	return nil
}

// Stop shuts the server down and waits for it to finish.
func (s *Server) Stop() {
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Connect returns a connection to the embedded server that does not go
// through TCP.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	if s.ns == nil {
		return nil, errors.New("nats server not started")
	}
	opts := append([]nats.Option{nats.InProcessServer(s.ns)}, s.own...)
	// In process, the server does not require TLS, and a tls:// URL
	// would make the client verify the server's certificate for nothing.
	url := "nats://" + strings.TrimPrefix(s.ns.ClientURL(), "tls://")
	return connect(url, name, opts...)
}

// Connect connects to an external NATS server (or cluster) at url; the
// credentials may be in url (nats://token@host) or in opts.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	return connect(url, name, opts...)
}

func connect(url, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name(name),
		// Keep trying for as long as the process lives: a NATS restart
		// must not take the scheduler down.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", kalla.RedactURI(url), err)
	}
	return nc, nil
}

// JetStream returns the JetStream context of nc.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	return js, nil
}

// slogAdapter sends the NATS server's logs to slog. Fatalf logs and shuts the
// server down instead of exiting the process, so kallad can report it.
type slogAdapter struct {
	log      *slog.Logger
	shutdown func()
}

func (a *slogAdapter) Noticef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.log.Error("fatal: " + fmt.Sprintf(format, v...))
	go a.shutdown()
}
