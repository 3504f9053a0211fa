package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kalla-dev/kalla/internal/authlimit"
)

// Cookie names. Both are HttpOnly and SameSite=Strict, scoped to /ui/, and
// Secure when the request came over TLS.
const (
	sessionCookie = "kalla_session"
	csrfCookie    = "kalla_csrf"
	csrfField     = "csrf"
)

// maxSessions bounds the logins kept in memory; the oldest goes first.
const maxSessions = 10000

// sessions are the logins of a token-protected console: random ids held in
// memory, never the token itself, so a stolen cookie dies with the process
// and at its expiry, and the token never reaches the browser's storage.
type sessions struct {
	ttl time.Duration
	mu  sync.Mutex
	ids map[string]time.Time // id -> expiry
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, ids: map[string]time.Time{}}
}

// create returns the id of a new session.
func (s *sessions) create() (string, error) {
	id, err := randomToken()
	if err != nil {
		return "", err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, exp := range s.ids {
		if now.After(exp) {
			delete(s.ids, k)
		}
	}
	if len(s.ids) >= maxSessions {
		var oldest string
		for k, exp := range s.ids {
			if oldest == "" || exp.Before(s.ids[oldest]) {
				oldest = k
			}
		}
		delete(s.ids, oldest)
	}
	s.ids[id] = now.Add(s.ttl)
	return id, nil
}

func (s *sessions) valid(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.ids[id]
	if ok && time.Now().After(exp) {
		delete(s.ids, id)
		return false
	}
	return ok
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, id)
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// csrfKey signs the CSRF tokens of forms: a form's token is an HMAC of the
// browser's kalla_csrf cookie (a double-submit cookie that a page of
// another site can neither read nor, being SameSite=Strict, send). The key
// is made per process: a form older than a restart must be loaded again.
type csrfKey struct{ key []byte }

func newCSRFKey() (*csrfKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make the CSRF key: %w", err)
	}
	return &csrfKey{key: b}, nil
}

func (k *csrfKey) token(cookie string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check reports whether r carries a form token that matches its cookie.
func (k *csrfKey) check(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	got := r.PostFormValue(csrfField)
	return subtle.ConstantTimeCompare([]byte(got), []byte(k.token(c.Value))) == 1
}

type ctxKey int

const csrfCtx ctxKey = 0

// withCSRFCookie gives a browser without one its kalla_csrf cookie, and
// puts the matching form token in the request's context for the pages.
func (h *handler) withCSRFCookie(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value := ""
		if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
			value = c.Value
		} else if v, err := randomToken(); err == nil {
			value = v
			http.SetCookie(w, h.cookie(r, csrfCookie, v, 0))
			// The handlers read the cookie from the request.
			r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
		}
		next.ServeHTTP(w, r.WithContext(contextWithCSRF(r, h.csrf.token(value))))
	})
}

// cookie builds one of the console's cookies; maxAge -1 deletes it. It is
// Secure when the browser came over TLS: to this server, or to a proxy in
// front of it that says so (X-Forwarded-Proto: https). Believing that
// header can only make the cookie stricter.
func (h *handler) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
}

// sameOrigin refuses a POST that a browser says comes from another site
// (Sec-Fetch-Site) or another origin (Origin): a second guard beside the
// CSRF token. Clients that send neither (curl) rely on the token alone.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// checkPost answers 403 and reports false for a POST without a valid CSRF
// token or from another origin.
func (h *handler) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if !sameOrigin(r) || !h.csrf.check(r) {
		h.log.Warn("refused a console POST without a valid CSRF token or from another site", "path", r.URL.Path, "remote", r.RemoteAddr,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		h.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the console. Load the page again and resubmit.")
		return false
	}
	return true
}

// authenticate lets a request through by the API's rules: with a token, a
// valid session cookie (else the login page, or 401 for the live data);
// without one, loopback clients only.
func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.Token == "" {
			if !authlimit.IsLoopback(r.RemoteAddr) {
				h.fail(w, r, http.StatusForbidden, "Protected mode: without KALLA_API_TOKEN the console answers clients on the scheduler's own host (loopback) only. Set KALLA_API_TOKEN on the scheduler to open it to the network; the console then asks for the token once.")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil && h.sessions.valid(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, "/ui/live/") {
			h.fail(w, r, http.StatusUnauthorized, "Log in to the console first.")
			return
		}
		http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

// loginView is the data of the login page.
type loginView struct {
	Next  string
	Error string
}

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Token == "" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", "Log in", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the token once, in constant time, and starts a session.
// Wrong tokens are counted per client address (Config.Limiter), read
// through a trusted proxy's X-Forwarded-For (Limiter.ClientAddr).
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Token == "" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	if !h.checkPost(w, r) {
		return
	}
	next := safeNext(r.PostFormValue("next"))
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostFormValue("token"))))
	want := sha256.Sum256([]byte(h.cfg.Token))
	good := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	// Past the limit of wrong tokens from this address, every token is
	// refused, the right one too, so a guesser learns nothing more.
	client := h.cfg.Limiter.ClientAddr(r)
	if wait := h.cfg.Limiter.Attempt(client, good); wait > 0 {
		h.log.Warn("console login refused: too many wrong tokens from this address", "remote", r.RemoteAddr, "client", client, "retry_after", wait)
		w.Header().Set("Retry-After", authlimit.RetryAfter(wait))
		h.render(w, r, http.StatusTooManyRequests, "login", "Log in", loginView{Next: next,
			Error: "Too many wrong tokens from your address: try again in " + authlimit.RetryAfter(wait) + " seconds."})
		return
	}
	if !good {
		h.log.Warn("console login refused: wrong token", "remote", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login", "Log in", loginView{Next: next, Error: "That is not the scheduler's KALLA_API_TOKEN."})
		return
	}
	id, err := h.sessions.create()
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "The session could not be created; try again.")
		return
	}
	http.SetCookie(w, h.cookie(r, sessionCookie, id, int(h.cfg.SessionTTL/time.Second)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		h.sessions.remove(c.Value)
	}
	http.SetCookie(w, h.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after login inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
