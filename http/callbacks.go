package kallahttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/startstop"
)

// CallbackConfig configures a CallbackSender.
type CallbackConfig struct {
	// Store holds the records whose final callbacks are sent; deliveries
	// are recorded in it.
	Store kalla.JobStore
	// Client sends the callbacks; default: NewCallbackClient(Hosts, 10s).
	// A client given here should not follow redirects either.
	Client *http.Client
	// Hosts are the callback hosts the default client may connect to;
	// nil allows any but link-local (cloud metadata) addresses.
	Hosts *kalla.AllowList
	// Workers is how many callbacks are sent at once; default 8.
	Workers int
	// MaxPending bounds the runs with callbacks waiting to be sent; beyond
	// it progress reports are dropped and final callbacks wait for the
	// next sweep. Default 1024.
	MaxPending int
	// MaxPendingPerHost bounds the runs with callbacks waiting for one
	// callback host (host:port of callback_url), so that a receiver that
	// never answers holds no more than that many and cannot crowd out the
	// others. Beyond it, the same as beyond MaxPending. Default 256.
	MaxPendingPerHost int
	// InitialBackoff and MaxBackoff bound the exponential wait between
	// tries of a failed callback. Defaults 250ms and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// ProgressTries is how often a progress report is tried before it is
	// dropped (a newer one is on its way); default 5. Final callbacks are
	// tried until delivered.
	ProgressTries int
	// SweepInterval is how often the store is searched for final
	// callbacks not yet delivered (after a restart, or beyond MaxPending).
	// Default 30s.
	SweepInterval time.Duration
	// FlushTimeout bounds Stop's wait for callbacks still pending; the
	// final ones not delivered by then are sent after the next start.
	// Default 5s.
	FlushTimeout time.Duration
	Logger       *slog.Logger
}

func (c *CallbackConfig) validate() error {
	if c.Store == nil {
		return errors.New("callback config: Store is required")
	}
	if c.Workers < 0 || c.MaxPending < 0 || c.MaxPendingPerHost < 0 || c.ProgressTries < 0 {
		return errors.New("callback config: Workers, MaxPending, MaxPendingPerHost and ProgressTries must not be negative")
	}
	if c.MaxPendingPerHost == 0 {
		c.MaxPendingPerHost = 256
	}
	if c.Client == nil {
		c.Client = NewCallbackClient(c.Hosts, 10*time.Second)
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1024
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.MaxBackoff < c.InitialBackoff {
		return fmt.Errorf("callback config: MaxBackoff %s is shorter than InitialBackoff %s", c.MaxBackoff, c.InitialBackoff)
	}
	if c.ProgressTries == 0 {
		c.ProgressTries = 5
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// CallbackSender delivers callbacks in the background, so a slow or dead
// receiver never slows a job. Progress reports of a run are coalesced within
// a stage (the latest wins, but every stage gets at least one report) and
// dropped after ProgressTries; a run's final callback (complete or error)
// is sent after its progress, retried until the
// receiver answers, and recorded as delivered in the store, so that it is
// sent once even across restarts. It is at least once: if the process dies
// between the receiver's answer and the store's write, the callback is sent
// again after the restart, so receivers should ignore a second one for the
// same run_id. Several schedulers on one store each sweep it, so two of them
// may both send a callback left undelivered by a crash; one scheduler per
// store sends each final callback once.
type CallbackSender struct {
	cfg   CallbackConfig
	log   *slog.Logger
	ready chan string

	mu   sync.Mutex
	runs map[string]*pendingRun
	// hosts counts the runs in runs by callback host.
	hosts   map[string]int
	stopped bool

	startstop.Base
	// ctx is the service context, cancelled at Stop; nil before Start.
	ctx context.Context
	wg  sync.WaitGroup
}

// pendingRun is the callback work waiting for one run.
type pendingRun struct {
	url string
	// host is the callback host the run counts against; "" when its URL
	// is unknown (its record could not be read).
	host string
	// progress holds the reports not sent yet, oldest first. A report
	// replaces the last pending one only if both are of the same stage, so
	// the first report of a fast stage is never lost behind the next
	// stage's (an end-to-end test once missed "matching" that way).
	progress []kalla.Progress
	final    bool
	// scheduled: in the ready queue, being sent, or waiting for a retry.
	scheduled     bool
	progressTries int
	finalTries    int
	timer         *time.Timer
}

var _ kalla.Notifier = (*CallbackSender)(nil)

// NewCallbackSender validates cfg.
func NewCallbackSender(cfg CallbackConfig) (*CallbackSender, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &CallbackSender{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "callbacks"),
		ready: make(chan string, cfg.MaxPending),
		runs:  map[string]*pendingRun{},
		hosts: map[string]int{},
	}, nil
}

// Start starts the senders and the sweep, which first runs at once so that
// final callbacks left undelivered by a previous process go out.
func (s *CallbackSender) Start(ctx context.Context) error {
	return s.StartOnce(ctx, "callback sender", func(ctx context.Context) error {
		s.mu.Lock()
		s.ctx = ctx
		s.mu.Unlock()
		for range s.cfg.Workers {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.work() }()
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.sweepLoop() }()
		return nil
	})
}

// Stop waits up to FlushTimeout for pending callbacks, then stops sending.
func (s *CallbackSender) Stop() {
	s.StopOnce(func(cancel context.CancelCauseFunc) {
		deadline := time.Now().Add(s.cfg.FlushTimeout)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for s.pending() > 0 && time.Now().Before(deadline) {
			<-tick.C
		}
		s.mu.Lock()
		s.stopped = true
		for _, pr := range s.runs {
			if pr.timer != nil {
				pr.timer.Stop()
			}
		}
		s.mu.Unlock()
		cancel(nil)
		s.wg.Wait()
	})
}

func (s *CallbackSender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

// Progress implements kalla.Notifier.
func (s *CallbackSender) Progress(callbackURL string, p kalla.Progress) {
	if callbackURL == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.track(p.RunID, callbackURL, false)
	if pr == nil {
		return
	}
	pr.url = callbackURL
	pr.progress = coalesce(pr.progress, p)
	s.schedule(p.RunID, pr)
}

// maxPendingStages bounds the reports pending for one run; there are only a
// handful of stages, so it is only reached by a runner that goes back and
// forth between them.
const maxPendingStages = 8

// coalesce adds p to the pending reports q: it replaces the last one if
// that is of the same stage (or q is full), else it is appended.
func coalesce(q []kalla.Progress, p kalla.Progress) []kalla.Progress {
	if n := len(q); n > 0 && (q[n-1].Stage == p.Stage || n >= maxPendingStages) {
		q[n-1] = p
		return q
	}
	return append(q, p)
}

// Finished implements kalla.Notifier. A run with nothing pending is looked
// up in the store, so that its final callback counts against its callback
// host's bound.
func (s *CallbackSender) Finished(runID string) {
	s.mu.Lock()
	_, tracked := s.runs[runID]
	ctx := s.ctx
	s.mu.Unlock()
	callbackURL := ""
	if !tracked && ctx != nil {
		if rec, err := s.cfg.Store.Get(ctx, runID); err == nil {
			callbackURL = rec.Job.CallbackURL
		}
	}
	s.finished(runID, callbackURL)
}

// finished is Finished for a run whose callback URL may be known, so that
// it counts against its host's bound.
func (s *CallbackSender) finished(runID, callbackURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.track(runID, callbackURL, true)
	if pr == nil {
		return // the sweep delivers it: it is in the store
	}
	pr.final = true
	s.schedule(runID, pr)
}

// track returns the pending work of runID, creating it within MaxPending
// and MaxPendingPerHost; s.mu is held.
func (s *CallbackSender) track(runID, callbackURL string, final bool) *pendingRun {
	if s.stopped || s.ctx == nil {
		return nil
	}
	pr := s.runs[runID]
	if pr != nil {
		return pr
	}
	host := callbackHost(callbackURL)
	full := ""
	switch {
	case len(s.runs) >= s.cfg.MaxPending:
		full = "too many callbacks pending"
	case host != "" && s.hosts[host] >= s.cfg.MaxPendingPerHost:
		full = "too many callbacks pending for one callback host"
	}
	if full != "" {
		if final {
			s.log.Warn(full+"; the final callback waits for the next sweep", "run_id", runID, "host", host)
		} else {
			s.log.Debug(full+"; progress report dropped", "run_id", runID, "host", host)
		}
		return nil
	}
	pr = &pendingRun{host: host}
	s.runs[runID] = pr
	if host != "" {
		s.hosts[host]++
	}
	return pr
}

// untrack forgets runID, nothing being left to send; s.mu is held.
func (s *CallbackSender) untrack(runID string, pr *pendingRun) {
	delete(s.runs, runID)
	if pr.host == "" {
		return
	}
	if s.hosts[pr.host]--; s.hosts[pr.host] <= 0 {
		delete(s.hosts, pr.host)
	}
}

// callbackHost is the host:port callbacks to base go to, lower-cased; ""
// when base does not parse.
func callbackHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// schedule puts runID in the ready queue unless it is there already, or is
// being sent or waiting for a retry; s.mu is held.
func (s *CallbackSender) schedule(runID string, pr *pendingRun) {
	if pr.scheduled {
		return
	}
	pr.scheduled = true
	s.push(runID)
}

func (s *CallbackSender) push(runID string) {
	select {
	case s.ready <- runID:
	default:
		// Cannot happen: each run is in the queue at most once and the
		// queue holds MaxPending runs.
		s.log.Error("callback queue full", "run_id", runID)
	}
}

func (s *CallbackSender) work() {
	for {
		select {
		case runID := <-s.ready:
			s.send(runID)
		case <-s.ctx.Done():
			return
		}
	}
}

// send delivers the oldest pending progress report of runID, then, once
// no report is pending, its final callback.
func (s *CallbackSender) send(runID string) {
	s.mu.Lock()
	pr := s.runs[runID]
	if pr == nil {
		s.mu.Unlock()
		return
	}
	var p *kalla.Progress
	if len(pr.progress) > 0 {
		first := pr.progress[0]
		p, pr.progress = &first, pr.progress[1:]
	}
	final, url := pr.final, pr.url
	s.mu.Unlock()

	retry, more := false, false
	if p != nil {
		_, err := s.post(url, "progress", p)
		s.mu.Lock()
		if err != nil {
			pr.progressTries++
			superseded := len(pr.progress) > 0 && pr.progress[0].Stage == p.Stage
			if !superseded && pr.progressTries < s.cfg.ProgressTries {
				pr.progress = append([]kalla.Progress{*p}, pr.progress...) // try again
				retry = true
			}
			if final {
				retry = true // keep the final callback after the progress
			}
		} else {
			pr.progressTries = 0
		}
		more = len(pr.progress) > 0
		s.mu.Unlock()
		if err != nil {
			s.log.Debug("progress callback failed", "run_id", runID, "err", err)
		}
	}
	if final && !retry && !more {
		delivered := s.deliverFinal(runID)
		s.mu.Lock()
		if delivered {
			pr.final = false
		} else {
			pr.finalTries++
			retry = true
		}
		s.mu.Unlock()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
	case retry:
		tries := max(pr.progressTries, pr.finalTries)
		pr.timer = time.AfterFunc(s.backoff(tries), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.stopped {
				s.push(runID)
			}
		})
	case len(pr.progress) > 0 || pr.final:
		s.push(runID) // more to send: the next report, or what arrived meanwhile
	default:
		s.untrack(runID, pr)
	}
}

// backoff is InitialBackoff doubled per failed try, capped at MaxBackoff,
// with ±20% jitter so that retries to one receiver spread out.
func (s *CallbackSender) backoff(tries int) time.Duration {
	d := s.cfg.InitialBackoff
	for i := 1; i < tries && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// deliverFinal sends the complete or error callback of runID unless the
// store says it was delivered, and records the outcome. It reports whether
// nothing is left to do.
func (s *CallbackSender) deliverFinal(runID string) bool {
	rec, err := s.cfg.Store.Get(s.ctx, runID)
	if errors.Is(err, kalla.ErrJobNotFound) {
		return true
	}
	if err != nil {
		s.log.Warn("read job for its callback", "run_id", runID, "err", err)
		return false
	}
	if !rec.NeedsCallback() {
		return true
	}
	kind, body := "error", any(rec.Error)
	if rec.State == kalla.JobCompleted {
		kind, body = "complete", rec.Result
	}
	status, err := s.post(rec.Job.CallbackURL, kind, body)
	// A host the allow-list refuses stays refused: give up, like on a 4xx,
	// and keep the reason without the URL (it may hold a token).
	var refused *kalla.NotAllowedError
	if errors.As(err, &refused) {
		err = nil
	}
	now := time.Now().UTC()
	_, uerr := kalla.UpdateJob(s.ctx, s.cfg.Store, runID, func(r *kalla.JobRecord) error {
		if r.Callback.Delivered {
			return kalla.ErrSkipUpdate
		}
		r.Callback.Tries++
		if err != nil {
			r.Callback.LastError = kalla.RedactText(err.Error(), r.Job.Secrets()...)
			return nil
		}
		if refused != nil {
			r.Callback.LastError = refused.Error()
		}
		r.Callback.Delivered, r.Callback.DeliveredAt, r.Callback.Status = true, &now, status
		return nil
	})
	if uerr != nil {
		s.log.Warn("record callback delivery", "run_id", runID, "err", uerr)
	}
	switch {
	case err != nil:
		s.log.Warn(kind+" callback failed; retrying", "run_id", runID, "err", err)
		return false
	case refused != nil:
		s.log.Warn(kind+" callback refused by the callback allow-list; not retried", "run_id", runID, "reason", refused.Error())
	case status >= 300 && status < 400:
		// Not followed, and not logged with its Location (which may hold a
		// token); a redirect is the receiver's final answer.
		s.log.Warn(kind+" callback answered with a redirect, which is not followed; not retried", "run_id", runID, "status", status)
	case status >= 300:
		s.log.Warn(kind+" callback rejected by the receiver; not retried", "run_id", runID, "status", status)
	default:
		s.log.Info(kind+" callback delivered", "run_id", runID)
	}
	return true
}

// errRetryable marks answers worth trying again (5xx, 429).
var errRetryable = errors.New("receiver answered")

// post sends body to {base}/{kind}. It returns an error for transport
// errors, 5xx and 429 (worth retrying); any other status is final.
func (s *CallbackSender) post(base, kind string, body any) (int, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	url := strings.TrimRight(base, "/") + "/" + kind
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kallad")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s callback: %w", kind, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return resp.StatusCode, fmt.Errorf("post %s callback: %w %d", kind, errRetryable, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func (s *CallbackSender) sweepLoop() {
	s.sweep()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweep()
		case <-s.ctx.Done():
			return
		}
	}
}

// sweep hands every final callback still undelivered to the senders.
func (s *CallbackSender) sweep() {
	err := s.cfg.Store.Scan(s.ctx, func(rec *kalla.JobRecord) error {
		if rec.NeedsCallback() {
			s.finished(rec.RunID, rec.Job.CallbackURL)
		}
		return nil
	})
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("sweep for undelivered callbacks", "err", err)
	}
}
