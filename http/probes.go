package kallahttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kalla-dev/kalla/internal/startstop"
)

// Readiness states: /ready answers 200 only while serving.
const (
	stateStarting int32 = iota
	stateServing
	stateDraining
)

// Probes answers the routes every kallad process serves to its
// orchestrator: /health (the process answers), /ready (it is serving: 503
// while it starts and while it drains) and /metrics. The scheduler's API
// serves them beside the job API; an executor serves them alone, with a
// ProbeServer.
type Probes struct {
	state    atomic.Int32
	gatherer prometheus.Gatherer
	log      *slog.Logger
	// check, if set, is asked while serving; a non-empty answer is the
	// status of a 503 (the scheduler's job store does not answer).
	check func(context.Context) string
	// extra, if set, adds fields to /ready's body.
	extra func(body map[string]any)
}

// MarkReady moves to serving: /ready answers 200.
func (p *Probes) MarkReady() { p.state.CompareAndSwap(stateStarting, stateServing) }

// Drain makes /ready answer 503, so balancers stop sending work, while the
// process keeps answering.
func (p *Probes) Drain() { p.state.Store(stateDraining) }

func (p *Probes) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (p *Probes) ready(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ready"}
	status := http.StatusOK
	switch p.state.Load() {
	case stateStarting:
		status, body["status"] = http.StatusServiceUnavailable, "starting"
	case stateDraining:
		status, body["status"] = http.StatusServiceUnavailable, "draining"
	default:
		if p.check != nil {
			if problem := p.check(r.Context()); problem != "" {
				status, body["status"] = http.StatusServiceUnavailable, problem
			}
		}
	}
	if p.extra != nil {
		p.extra(body)
	}
	writeJSON(w, status, body)
}

func (p *Probes) metrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(p.gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)}).ServeHTTP(w, r)
}

// ProbeConfig configures a ProbeServer.
type ProbeConfig struct {
	// Addr is the host:port Start listens on; port 0 picks a free one,
	// logged as "<Component> probes listening".
	Addr string
	// Component names the process in the log ("executor").
	Component string
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// ProbeServer serves only the probes, for a process without the job API:
// an executor. It starts in the "starting" state (/ready 503) until
// MarkReady.
type ProbeServer struct {
	Probes
	listener
	cfg ProbeConfig
}

// NewProbeServer fills cfg's defaults.
func NewProbeServer(cfg ProbeConfig) *ProbeServer {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &ProbeServer{cfg: cfg}
	p.Probes.gatherer, p.Probes.log = cfg.Gatherer, cfg.Logger.With("component", "probes")
	return p
}

// Start listens on Addr and serves in the background.
func (p *ProbeServer) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", p.health)
	mux.HandleFunc("GET /ready", p.ready)
	mux.HandleFunc("GET /metrics", p.metrics)
	srv := &http.Server{Handler: jsonNotFound(mux), ReadHeaderTimeout: 10 * time.Second}
	return p.listener.start(ctx, p.cfg.Component+" probes", p.cfg.Addr, srv, p.cfg.Logger)
}

// Stop drains and shuts the server down.
func (p *ProbeServer) Stop() {
	p.Drain()
	p.listener.stop(5*time.Second, p.cfg.Logger)
}

// listener serves an http.Server in the background, with the Start/Stop
// of every kallad service: the API server and the probe server.
type listener struct {
	startstop.Base
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// start listens on addr and serves srv; it logs "<name> listening" with
// the address, so that a free port picked by the system is known.
func (l *listener) start(ctx context.Context, name, addr string, srv *http.Server, log *slog.Logger) error {
	return l.StartOnce(ctx, name, func(context.Context) error {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		l.srv, l.ln, l.done = srv, ln, make(chan struct{})
		go func() {
			defer close(l.done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(name+" stopped", "err", err)
			}
		}()
		log.Info(name+" listening", "addr", ln.Addr().String())
		return nil
	})
}

// Addr is the address the server listens on, once started.
func (l *listener) Addr() string { return l.ln.Addr().String() }

// stop lets requests in flight finish within timeout, then closes the rest.
func (l *listener) stop(timeout time.Duration, log *slog.Logger) {
	l.StopOnce(func(context.CancelCauseFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			log.Warn("http shutdown", "err", err)
			_ = l.srv.Close()
		}
		<-l.done
	})
}
