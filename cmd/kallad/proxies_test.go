package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// A bad --trusted-proxies or KALLA_TRUSTED_PROXIES stops the scheduler
// with an error naming the bad entry.
func TestProxyFlagRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--trusted-proxies", "10.0.0.0/8,10.1.0.0/33"}, "", `--trusted-proxies (env KALLA_TRUSTED_PROXIES): trusted proxy "10.1.0.0/33" is not a CIDR`},
		{nil, "KALLA_TRUSTED_PROXIES=ingress.local", `--trusted-proxies (env KALLA_TRUSTED_PROXIES): trusted proxy "ingress.local" is not an IP address or a CIDR`},
	} {
		cmd := exec.Command(kalladBin, append([]string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--data-dir", t.TempDir()}, c.args...)...)
		cmd.Env = append(os.Environ(), c.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v %s: %v\n%s\nwant an error containing %q", c.args, c.env, err, out, c.want)
		}
	}
}

// The real scheduler behind a trusted proxy (127.0.0.2, from
// KALLA_TRUSTED_PROXIES): a client guessing the token through it is
// limited after the default 10 wrong tokens, while another client of the
// same proxy keeps its access.
func TestProxySchedulerGuessing(t *testing.T) {
	t.Parallel()
	token := "proxy-test-token-" + kalla.NewRunID()
	s := startScheduler(t, t.TempDir(), "KALLA_API_TOKEN="+token, "KALLA_TRUSTED_PROXIES=127.0.0.2")
	jobs := func(c *http.Client, tok string) int {
		t.Helper()
		req, err := http.NewRequest("GET", s.url+"/api/jobs", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	guesser, other := kallatest.ClientVia("127.0.0.2", "203.0.113.7"), kallatest.ClientVia("127.0.0.2", "203.0.113.8")
	for i := range 10 {
		if code := jobs(guesser, "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d through the proxy: %d, want 401", i+1, code)
		}
	}
	if code := jobs(guesser, token); code != http.StatusTooManyRequests {
		t.Errorf("the guesser's right token after 10 wrong ones: %d, want 429", code)
	}
	if code := jobs(other, token); code != http.StatusOK {
		t.Errorf("another client of the proxy with the right token: %d, want 200", code)
	}
}
