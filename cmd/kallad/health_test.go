package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// healthServer answers every request with status and records the paths.
func healthServer(t *testing.T, status int) (*httptest.Server, *[]string) {
	t.Helper()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if status == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", status)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &paths
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// kalladIn is kallad with env added to the environment.
func kalladIn(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kalladBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("run kallad: %v", err)
	return "", "", -1
}

func TestHealthCommand(t *testing.T) {
	t.Parallel()
	ok, okPaths := healthServer(t, http.StatusOK)
	down, _ := healthServer(t, http.StatusServiceUnavailable)
	moved, _ := healthServer(t, http.StatusFound)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)
	refused := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))

	cases := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"healthy", []string{ok.URL}, 0, ""},
		{"explicit path", []string{ok.URL + "/ready"}, 0, ""},
		{"503", []string{down.URL}, 1, "answered 503 Service Unavailable"},
		{"redirect not followed", []string{moved.URL}, 1, "answered 302 Found"},
		{"refused", []string{refused}, 1, "connection refused"},
		{"timeout, flag after the URL", []string{hung.URL, "--timeout", "300ms"}, 1, "no answer within the timeout"},
		{"not a URL", []string{"localhost:8080"}, 2, `URL "localhost:8080": want http://host:port`},
		{"two URLs", []string{ok.URL, ok.URL}, 2, "Usage: kallad health"},
		{"bad timeout", []string{"--timeout", "0s", ok.URL}, 2, "--timeout 0s: must be positive"},
	}
	for _, tc := range cases {
		stdout, stderr, code := kallad(t, t.TempDir(), append([]string{"health"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, stderr)
		}
		if stdout != "" {
			t.Errorf("%s: stdout %q", tc.name, stdout)
		}
		if tc.code == 1 && (strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "kallad health: ")) {
			t.Errorf("%s: stderr is not one line: %q", tc.name, stderr)
		}
		if !strings.Contains(stderr, tc.says) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, stderr, tc.says)
		}
	}
	if got := strings.Join(*okPaths, ","); got != "/health,/ready" {
		t.Errorf("paths requested: %s, want /health,/ready", got)
	}
}

// Without a URL, kallad health checks the scheduler's HTTP_PORT and the
// executor's BIND_PORT on loopback: the image's one HEALTHCHECK serves both.
func TestHealthCommandDefaults(t *testing.T) {
	t.Parallel()
	ok, _ := healthServer(t, http.StatusOK)
	okPort := strconv.Itoa(ok.Listener.Addr().(*net.TCPAddr).Port)
	refused := strconv.Itoa(closedPort(t))
	cases := []struct {
		name string
		env  []string
		code int
	}{
		{"scheduler on HTTP_PORT", []string{"HTTP_PORT=" + okPort, "BIND_PORT="}, 0},
		{"executor on BIND_PORT", []string{"HTTP_PORT=" + refused, "BIND_PORT=" + okPort}, 0},
		{"neither", []string{"HTTP_PORT=" + refused, "BIND_PORT=" + refused}, 1},
		{"no BIND_PORT, HTTP_PORT down", []string{"HTTP_PORT=" + refused, "BIND_PORT="}, 1},
		{"bad HTTP_PORT", []string{"HTTP_PORT=web"}, 2},
	}
	for _, tc := range cases {
		_, stderr, code := kalladIn(t, t.TempDir(), tc.env, "health")
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, stderr)
		}
	}
}
