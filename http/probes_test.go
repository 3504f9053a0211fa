package kallahttp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// get requests path from the probe server and returns its status and body.
func probeGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func probeStatus(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Status string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v.Status
}

// TestProbeServer runs the probes an executor serves over real HTTP through
// its life: starting, serving, draining, stopped.
func TestProbeServer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kallad_probe_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var logs strings.Builder
	p := NewProbeServer(ProbeConfig{Addr: "127.0.0.1:0", Component: "executor", Gatherer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	addr := p.Addr()
	if !strings.Contains(logs.String(), `msg="executor probes listening"`) || !strings.Contains(logs.String(), "addr="+addr) {
		t.Errorf("the free port picked is not logged: %s", logs.String())
	}

	if code, body := probeGet(t, addr, "/health"); code != 200 || probeStatus(t, body) != "ok" {
		t.Errorf("/health while starting: %d %s, want 200 ok (alive)", code, body)
	}
	if code, body := probeGet(t, addr, "/ready"); code != 503 || probeStatus(t, body) != "starting" {
		t.Errorf("/ready before MarkReady: %d %s, want 503 starting", code, body)
	}
	p.MarkReady()
	if code, body := probeGet(t, addr, "/ready"); code != 200 || probeStatus(t, body) != "ready" {
		t.Errorf("/ready after MarkReady: %d %s, want 200 ready", code, body)
	}
	if code, body := probeGet(t, addr, "/metrics"); code != 200 || !strings.Contains(body, "kallad_probe_test_total 3") {
		t.Errorf("/metrics: %d, the registry's counter missing:\n%s", code, body)
	}
	if code, body := probeGet(t, addr, "/api/jobs"); code != 404 || !strings.Contains(body, `"code"`) {
		t.Errorf("/api/jobs on the probe server: %d %s, want a JSON 404", code, body)
	}
	p.Drain()
	if code, body := probeGet(t, addr, "/ready"); code != 503 || probeStatus(t, body) != "draining" {
		t.Errorf("/ready while draining: %d %s, want 503 draining", code, body)
	}
	if code, _ := probeGet(t, addr, "/health"); code != 200 {
		t.Errorf("/health while draining: %d, want 200", code)
	}
	p.Stop()
	p.Stop()
	select {
	case <-p.Stopped():
	default:
		t.Fatal("Stopped not signalled after Stop")
	}
	if _, err := http.Get("http://" + addr + "/health"); err == nil {
		t.Error("the probe server still answers after Stop")
	}
}
