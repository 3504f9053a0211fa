// Package ui is Kalla's web console, served by `kallad scheduler` under
// /ui/ on the API's listener: runs, a run's attempts, result and rows,
// the cluster, and a form to submit a job. Pages are html/template with
// embedded assets, so `go build` stays the whole build; plain links and
// forms work without JavaScript, and a small script (static/console.js)
// refreshes progress by polling.
//
// The console owns no job logic: it calls the job API's handler in process
// (GET/POST/DELETE /api/...) after authenticating the user by the API's own
// rules, so a job submitted or cancelled here is validated and recorded
// exactly as over the API. Result files are read through a
// kalla.ResultBrowser (DuckDB, locked down to the run's output folder).
package ui

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/authlimit"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Console.
type Config struct {
	// Token is the API's bearer token (KALLA_API_TOKEN). With one, the
	// console asks for it once and keeps a session cookie; without one it
	// answers loopback clients only, as the API does.
	Token string
	// Browser reads the rows of result files.
	Browser kalla.ResultBrowser
	// QueueDepth, if set, counts the jobs waiting (the cluster page).
	QueueDepth func(context.Context) (int, error)
	// Fetch, if set, copies results on S3 for the console to read, below
	// TempDir (default the system's temp folder); without it the console
	// reads local results only.
	Fetch   Fetcher
	TempDir string
	// SessionTTL is how long a login lasts; default 12h.
	SessionTTL time.Duration
	// Limiter counts wrong tokens at login per client address; nil makes
	// one with authlimit's defaults. The scheduler passes the API's, so
	// that guesses at the login and at the API count together.
	Limiter *authlimit.Limiter
	Logger  *slog.Logger
}

// Console serves the web console.
type Console struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions *sessions
	csrf     *csrfKey
	copies   *copies
}

// New validates cfg and parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.Browser == nil {
		return nil, errors.New("ui config: Browser is required")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Limiter == nil {
		cfg.Limiter = authlimit.New(authlimit.Config{})
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	key, err := newCSRFKey()
	if err != nil {
		return nil, err
	}
	copies, err := newCopies(cfg.Fetch, cfg.TempDir)
	if err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, log: cfg.Logger.With("component", "ui"), pages: pages,
		sessions: newSessions(cfg.SessionTTL), csrf: key, copies: copies,
	}, nil
}

// Close removes the copies of results on S3.
func (c *Console) Close() error { return c.copies.close() }

// Handler returns the console's handler for /ui/, calling api (the job
// API's handler) for every job read and change. Its signature is the one
// kallahttp.Config.UI takes.
func (c *Console) Handler(api http.Handler) http.Handler {
	h := &handler{Console: c, api: apiClient{h: api, token: c.cfg.Token}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login", h.loginPage)
	mux.HandleFunc("POST /ui/login", h.login)
	for _, rt := range []struct {
		pattern string
		fn      func(http.ResponseWriter, *http.Request)
	}{
		{"POST /ui/logout", h.logout},
		{"GET /ui/{$}", h.runsPage},
		{"GET /ui/live/runs", h.liveRuns},
		{"GET /ui/runs/{run_id}", h.runPage},
		{"GET /ui/live/runs/{run_id}", h.liveRun},
		{"POST /ui/runs/{run_id}/cancel", h.cancel},
		{"GET /ui/runs/{run_id}/rows/{file}", h.rowsPage},
		{"GET /ui/runs/{run_id}/download/{file}", h.download},
		{"GET /ui/cluster", h.clusterPage},
		{"GET /ui/submit", h.submitPage},
		{"POST /ui/submit", h.submit},
	} {
		mux.Handle(rt.pattern, h.authenticate(http.HandlerFunc(rt.fn)))
	}
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "There is no such page in the console.")
	})
	// The assets are open, and set no cookie: a browser fetching them in
	// parallel with a page must not replace the page's CSRF cookie.
	root := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	root.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticFiles(http.FileServerFS(static))))
	root.Handle("/ui/", h.withCSRFCookie(mux))
	return securityHeaders(root)
}

// handler is the console bound to the API it calls.
type handler struct {
	*Console
	api apiClient
}

// contentSecurityPolicy allows the console's own script, style and
// images only: no inline script or style (so an injected one does not
// run), no frames, forms posting to the console only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on the console's own form posts.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// staticFiles lets the browser cache the embedded assets for an hour.
func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		next.ServeHTTP(w, r)
	})
}
