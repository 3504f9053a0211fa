package ui_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// Behind a trusted reverse proxy (127.0.0.2) the console's login counts
// wrong tokens per forwarded client: a guesser is refused with 429, the
// right token too, while another browser behind the same proxy logs in.
func TestProxyLoginGuessing(t *testing.T) {
	const token = "ui-proxy-token-0123456789"
	nets, err := authlimit.ParseTrustedProxies("127.0.0.2/32")
	if err != nil {
		t.Fatal(err)
	}
	clk := kallatest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	srv := limitedConsole(t, token, authlimit.Config{Burst: 3, Every: 20 * time.Second, Now: clk.Now, TrustedProxies: nets})
	login := func(b *http.Client, tok string) int {
		t.Helper()
		csrf := formToken(t, b, srv.URL+"/ui/login")
		resp, err := b.PostForm(srv.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {tok}, "next": {"/ui/"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	guesser := withCookies(t, kallatest.ClientVia("127.0.0.2", "203.0.113.7"))
	for i := range 3 {
		if code := login(guesser, "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d through the proxy: %d, want 401", i+1, code)
		}
	}
	if code := login(guesser, token); code != http.StatusTooManyRequests {
		t.Errorf("the guesser's right token after 3 wrong ones: %d, want 429", code)
	}
	if code := login(withCookies(t, kallatest.ClientVia("127.0.0.2", "198.51.100.1, 203.0.113.7")), token); code != http.StatusTooManyRequests {
		t.Errorf("the guesser with a made-up address left of its own: %d, want 429", code)
	}
	if code := login(withCookies(t, kallatest.ClientVia("127.0.0.2", "203.0.113.8")), token); code != http.StatusSeeOther {
		t.Errorf("another browser behind the proxy with the right token: %d, want 303", code)
	}
}
