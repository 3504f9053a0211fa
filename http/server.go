// Package kallahttp is the scheduler's HTTP side: the job API (submit, get,
// list, cancel), health, readiness and metrics, the OpenAPI document, and the
// callback sender that reports progress and results to the client's
// callback_url. It works on the root package's JobStore, Queue and Notifier
// interfaces; cmd/kallad wires in the concrete cluster types.
package kallahttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/authlimit"
)

// Validator checks a job before it is accepted; *kalla.Runner is one.
// Prepare opens the job's sources and output without reading them.
type Validator interface {
	Prepare(ctx context.Context, job *kalla.Job, requireRunID bool) ([2]kalla.Source, kalla.Output, error)
}

var _ Validator = (*kalla.Runner)(nil)

// Config configures a Server.
type Config struct {
	// Addr is the host:port Start listens on.
	Addr      string
	Validator Validator
	Store     kalla.JobStore
	Queue     kalla.Queue
	// Notifier receives Finished for a queued job cancelled here.
	Notifier kalla.Notifier
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Token, if set, must be presented as "Authorization: Bearer TOKEN" on
	// the job API; without it the job API answers loopback clients only
	// (protected mode). Health, readiness, metrics and the OpenAPI document
	// stay open: probes and scrapers come from other hosts.
	Token string
	// MaxBodyBytes bounds a submitted job; default 1 MiB.
	MaxBodyBytes int64
	// Saturated, if set, reports that this process runs all the jobs it
	// may. /ready shows it in its body and still answers 200: a busy
	// scheduler serves the API (status, cancel, the executors' cluster
	// port behind the same Service) and queues new jobs.
	Saturated func() bool
	// Cluster, if set, lists the live executors on GET /api/cluster; nil
	// lists none.
	Cluster ClusterLister
	// MaxQueued, if positive, is how many jobs may wait in the queue (not
	// counting running ones); a new job beyond it gets 429. QueueDepth
	// counts them.
	MaxQueued  int
	QueueDepth func(context.Context) (int, error)
	// DryRuns serves POST /api/jobs?dry_run=true (dryrun.go).
	DryRuns DryRuns
	// SubmitBind binds a submitted job against its sources' columns
	// (submitbind.go).
	SubmitBind SubmitBind
	// Timeouts of the HTTP server, so that a client that sends slowly (a
	// slowloris) or never reads cannot hold a connection: the request
	// header must arrive within ReadHeaderTimeout (default 10s), the whole
	// request within ReadTimeout (default 1m), the answer be written within
	// WriteTimeout (default 2m), and an idle keep-alive connection is
	// closed after IdleTimeout (default 2m). MaxHeaderBytes defaults to
	// 64 KiB.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	// ShutdownTimeout bounds Stop's wait for requests in flight.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// UI, if set, makes the handler served under /ui/ (the web console),
	// given the API's handler: the console calls the API in process, so it
	// follows the API's rules and answers.
	UI func(api http.Handler) http.Handler
	// AuthLimiter counts failed bearer tokens per client address (auth.go);
	// nil makes one with authlimit's defaults. The scheduler shares it with
	// the console's login.
	AuthLimiter *authlimit.Limiter
}

func (c *Config) validate() error {
	switch {
	case c.Validator == nil:
		return errors.New("http config: Validator is required")
	case c.Store == nil:
		return errors.New("http config: Store is required")
	case c.Queue == nil:
		return errors.New("http config: Queue is required")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("http config: negative MaxBodyBytes %d", c.MaxBodyBytes)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Notifier == nil {
		c.Notifier = nopNotifier{}
	}
	if c.AuthLimiter == nil {
		c.AuthLimiter = authlimit.New(authlimit.Config{})
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.NewRegistry()
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{
		{&c.ReadHeaderTimeout, 10 * time.Second}, {&c.ReadTimeout, time.Minute},
		{&c.WriteTimeout, 2 * time.Minute}, {&c.IdleTimeout, 2 * time.Minute},
	} {
		if *d.p < 0 {
			return fmt.Errorf("http config: negative timeout %s", *d.p)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

type nopNotifier struct{}

func (nopNotifier) Progress(string, kalla.Progress) {}
func (nopNotifier) Finished(string)                 {}

// Server serves the API. It starts in the "starting" state (/ready 503)
// until MarkReady.
type Server struct {
	Probes
	listener
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	// dry tracks the dry runs in flight, which Stop waits for.
	dry dryRunning
	// bind limits the submissions' bind checks; nil makes none.
	bind *binding
}

// route is one operation of the API; the OpenAPI test checks this table
// against openapi.yaml.
type route struct {
	method, path string
	// open routes need no token.
	open    bool
	handler func(*Server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{"POST", "/api/jobs", false, (*Server).submitJob},
	{"GET", "/api/jobs", false, (*Server).listJobs},
	{"GET", "/api/jobs/{run_id}", false, (*Server).getJob},
	{"DELETE", "/api/jobs/{run_id}", false, (*Server).cancelJob},
	{"GET", "/api/cluster", false, (*Server).listExecutors},
	{"GET", "/api/openapi.yaml", true, (*Server).openAPI},
	{"GET", "/health", true, (*Server).health},
	{"GET", "/ready", true, (*Server).ready},
	{"GET", "/metrics", true, (*Server).metrics},
}

// NewServer validates cfg and builds the handler.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "http"), bind: newBinding(cfg.SubmitBind)}
	s.Probes = Probes{gatherer: cfg.Gatherer, log: s.log, check: s.storeAnswers}
	if cfg.Saturated != nil {
		s.Probes.extra = func(body map[string]any) { body["saturated"] = cfg.Saturated() }
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handler(s, w, r) })
		if !rt.open {
			h = s.authenticate(h)
		}
		mux.Handle(rt.method+" "+rt.path, h)
	}
	s.handler = jsonNotFound(mux)
	if cfg.UI != nil {
		mux.Handle("/ui/", cfg.UI(fromConsole(s.handler)))
	}
	return s, nil
}

// Handler returns the API's handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Addr and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s.listener.start(ctx, "http api", s.cfg.Addr, srv, s.log)
}

// Stop drains and shuts the server down, letting requests in flight finish
// within ShutdownTimeout.
func (s *Server) Stop() {
	s.Drain()
	s.listener.stop(s.cfg.ShutdownTimeout, s.log)
	s.dry.stop()
}

// readyProbeKey is the run id /ready reads from the store: no job has it
// (run ids are UUIDs), so a reachable store answers "not found".
const readyProbeKey = "kalla-ready-probe"

// storeAnswers is the scheduler's readiness check: a scheduler is ready
// while its job store answers. One whose job slots are all taken is ready:
// it still answers and queues; "saturated" in /ready's body (and the
// kallad_job_slots metric beside kallad_active_jobs) says it is busy.
func (s *Server) storeAnswers(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.Get(ctx, readyProbeKey); err != nil && !errors.Is(err, kalla.ErrJobNotFound) {
		s.log.Warn("readiness: the job store does not answer", "err", err)
		return "store unreachable"
	}
	return ""
}

// jsonNotFound turns the mux's plain-text 404 and 405 answers into the API's
// JSON errors.
func jsonNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)
	})
}

// statusRecorder replaces the body of the mux's own error answers.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	if s.written {
		return
	}
	s.written = true
	switch status {
	case http.StatusNotFound:
		writeError(s.ResponseWriter, codeNoSuchRoute, "", "no such route")
	case http.StatusMethodNotAllowed:
		writeError(s.ResponseWriter, codeMethodNotAllowed, "", "method not allowed; see Allow")
	default:
		s.ResponseWriter.WriteHeader(status)
	}
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if !s.written {
		s.WriteHeader(http.StatusOK)
	}
	if s.status == http.StatusNotFound || s.status == http.StatusMethodNotAllowed {
		return len(p), nil // the JSON body is already written
	}
	return s.ResponseWriter.Write(p)
}
