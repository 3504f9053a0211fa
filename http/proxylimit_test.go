package kallahttp

import (
	"net/http"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Behind a trusted reverse proxy (127.0.0.2), wrong bearer tokens are
// counted per forwarded client: one guesser is limited while another
// client of the same proxy keeps working; a made-up X-Forwarded-For entry
// left of the proxy's does not move the guesser to a new bucket; and a
// client that is not a trusted proxy cannot pick its bucket with the
// header.
func TestProxyBearerGuessing(t *testing.T) {
	t.Parallel()
	const token = "proxy-token-0123456789"
	nets, err := authlimit.ParseTrustedProxies("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	clk := kallatest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	b := setup(t, Config{Token: token, AuthLimiter: authlimit.New(authlimit.Config{Burst: 3, Every: 30 * time.Second, Now: clk.Now, TrustedProxies: nets})})
	jobs := b.url + "/api/jobs"
	want := func(c *http.Client, who, tok string, code int) {
		t.Helper()
		if got, retry, body := call(t, c, jobs, tok); got != code {
			t.Errorf("%s, token %q: %d (Retry-After %q) %s, want %d", who, tok, got, retry, body, code)
		}
	}
	guesser := kallatest.ClientVia("127.0.0.2", "203.0.113.7")
	for range 3 {
		want(guesser, "the guesser behind the proxy", "wrong", 401)
	}
	want(guesser, "the guesser after 3 wrong tokens", token, 429)
	other := kallatest.ClientVia("127.0.0.2", "203.0.113.8")
	want(other, "another client of the proxy", token, 200)
	want(other, "another client of the proxy", "wrong", 401)
	want(kallatest.ClientFrom("127.0.0.2"), "the proxy itself", token, 200)
	spoof := kallatest.ClientVia("127.0.0.2", "198.51.100.99, 203.0.113.7")
	want(spoof, "the guesser with a made-up address left of its own", token, 429)

	// Not a trusted proxy: counted by its own address whatever it sends.
	for i := range 3 {
		want(kallatest.ClientVia("127.0.0.3", "198.51.100."+string(rune('1'+i))), "an untrusted client", "wrong", 401)
	}
	want(kallatest.ClientVia("127.0.0.3", "198.51.100.200"), "an untrusted client with a fresh X-Forwarded-For", token, 429)
	want(kallatest.ClientVia("127.0.0.2", "127.0.0.3"), "a proxied client whose address the untrusted one used", token, 429)
	want(kallatest.ClientVia("127.0.0.2", "198.51.100.1"), "a proxied client whose address the untrusted one claimed", token, 200)
}
