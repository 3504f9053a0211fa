package kallahttp

import (
	"net"
	"net/http"
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
		if !loopbackClient(r.RemoteAddr) {
			s.log.Debug("protected mode: refused a request from a client not on loopback", "remote", r.RemoteAddr, "path", r.URL.Path)
			writeError(w, codeForbidden, "", "protected mode: without KALLA_API_TOKEN the job API answers clients on this host (loopback) only; set KALLA_API_TOKEN on the scheduler and send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackClient reports whether a request's RemoteAddr is a loopback
// address. A reverse proxy on the same host makes every client look local:
// such a setup needs the token.
func loopbackClient(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
