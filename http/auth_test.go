package kallahttp

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Without a token (protected mode), a server listening on every address
// answers the job API to loopback clients and 403 to a client from another
// address of this host; health, readiness, metrics and the OpenAPI
// document stay open to it. With a token, that client gets in with it.
func TestProtectedMode(t *testing.T) {
	t.Parallel()
	ip := kallatest.NonLoopbackIP(t)
	for _, token := range []string{"", "s3cret"} {
		srv, err := NewServer(Config{Addr: "0.0.0.0:0", Validator: testRunner(), Store: newMemStore(), Queue: &memQueue{},
			Token: token, Logger: kallatest.TestLogger(t, slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		srv.MarkReady()
		_, port, _ := net.SplitHostPort(srv.Addr())
		local, remote := "http://127.0.0.1:"+port, "http://"+net.JoinHostPort(ip, port)
		for _, path := range []string{"/api/jobs", "/api/cluster"} {
			if resp := do(t, "GET", local+path, "", token, nil, nil); resp.StatusCode != 200 {
				t.Errorf("token %q: GET %s from loopback: %d", token, path, resp.StatusCode)
			}
			var e ErrorBody
			resp := do(t, "GET", remote+path, "", token, nil, &e)
			switch {
			case token == "" && (resp.StatusCode != 403 || e.Code != "forbidden" || !strings.Contains(e.Error, "KALLA_API_TOKEN")):
				t.Errorf("protected mode: GET %s from %s: %d %+v, want 403 forbidden naming KALLA_API_TOKEN", path, ip, resp.StatusCode, e)
			case token != "" && resp.StatusCode != 200:
				t.Errorf("with the token: GET %s from %s: %d %+v", path, ip, resp.StatusCode, e)
			}
		}
		if token == "" {
			var e ErrorBody
			if resp := do(t, "POST", remote+"/api/jobs", "application/json", "", mustJSON(t, validJob()), &e); resp.StatusCode != 403 {
				t.Errorf("protected mode: POST /api/jobs from %s: %d %+v", ip, resp.StatusCode, e)
			}
		}
		for _, path := range []string{"/health", "/ready", "/metrics", "/api/openapi.yaml"} {
			if resp := do(t, "GET", remote+path, "", "", nil, nil); resp.StatusCode != 200 {
				t.Errorf("token %q: GET %s from %s: %d, want it open", token, path, ip, resp.StatusCode)
			}
		}
	}
}

func TestLoopbackClient(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:5": true, "127.8.9.10:5": true, "[::1]:5": true, "[::ffff:127.0.0.1]:5": true,
		"10.0.0.1:5": false, "[::ffff:10.0.0.1]:5": false, "[fe80::1]:5": false, "": false, "localhost:5": false,
	} {
		if got := authlimit.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
