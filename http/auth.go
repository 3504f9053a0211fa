package kallahttp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/kalla-dev/kalla/internal/authlimit"
)

// authenticate guards a route of the job API: with a token, the bearer
// token; without one, protected mode: only clients on a loopback address
// get in, whatever address the server listens on, the way Redis' protected
// mode keeps an unconfigured server usable on its own host and closed to
// the network. Submitting a job makes the server read sources and write
// outputs with its own rights, so an open API is not a safe default.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token != "" {
		return s.requireToken(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authlimit.IsLoopback(r.RemoteAddr) {
			s.log.Debug("protected mode: refused a request from a client not on loopback", "remote", r.RemoteAddr, "path", r.URL.Path)
			writeError(w, codeForbidden, "", "protected mode: without KALLA_API_TOKEN the job API answers clients on this host (loopback) only; set KALLA_API_TOKEN on the scheduler and send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireToken checks the bearer token in constant time. Both sides are
// hashed first so that the comparison's length does not leak either.
// Wrong tokens are counted per client address (Config.AuthLimiter, read
// through a trusted proxy's X-Forwarded-For by Limiter.ClientAddr): past
// the limit, every token from that address, right or wrong, gets 429 with
// Retry-After until the address has earned another try, so a guesser
// learns nothing more. A request without a token is not a guess: 401.
// The console's in-process calls (fromConsole) carry the token of a user
// it has authenticated; they are not counted or refused, so that a
// guesser on the scheduler's host cannot lock the console out.
func (s *Server) requireToken(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		good := ok && subtle.ConstantTimeCompare(got[:], want[:]) == 1
		if ok && r.Context().Value(consoleCall{}) == nil {
			client := s.cfg.AuthLimiter.ClientAddr(r)
			if wait := s.cfg.AuthLimiter.Attempt(client, good); wait > 0 {
				s.log.Warn("refused a bearer token: too many wrong tokens from this address", "remote", r.RemoteAddr, "client", client, "retry_after", wait)
				w.Header().Set("Retry-After", authlimit.RetryAfter(wait))
				writeError(w, codeTooManyAttempts, "", "too many wrong bearer tokens from this address; retry after "+authlimit.RetryAfter(wait)+" s")
				return
			}
		}
		if !good {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kalla"`)
			writeError(w, codeUnauthorized, "", "missing or wrong bearer token (Authorization: Bearer <KALLA_API_TOKEN>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// consoleCall marks the context of a request the web console makes in
// process.
type consoleCall struct{}

// fromConsole is the API's handler as the console calls it: only requests
// made through it carry consoleCall, since the listener serves s.handler.
func fromConsole(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), consoleCall{}, true)))
	})
}
