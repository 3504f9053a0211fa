package ui_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/ui"
)

// The guessing attack on the console's login, against a console whose
// limiter runs on a clock the test advances: wrong tokens from one address
// get the same refusal whether near the token or not, then 429 with
// Retry-After for every token, the right one too; a browser on another
// address logs in meanwhile; after the wait the right token logs in.
func TestLoginGuessing(t *testing.T) {
	const token = "ui-login-token-0123456789"
	clk := kallatest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	srv := limitedConsole(t, token, authlimit.Config{Burst: 4, Every: 20 * time.Second, Now: clk.Now})

	// login posts the login form with tok from a browser (a client with
	// cookies) and returns the status, Retry-After and the error shown.
	login := func(b *http.Client, tok string) (int, string, string) {
		t.Helper()
		csrf := formToken(t, b, srv.URL+"/ui/login")
		resp, err := b.PostForm(srv.URL+"/ui/login", url.Values{"csrf": {csrf}, "token": {tok}, "next": {"/ui/"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body := html.UnescapeString(string(raw))
		if resp.StatusCode == http.StatusSeeOther {
			return resp.StatusCode, "", ""
		}
		m := loginErrorRe.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("login answered %d without an error shown:\n%s", resp.StatusCode, body)
		}
		if strings.Contains(body, token) {
			t.Fatal("the login page shows the token")
		}
		return resp.StatusCode, resp.Header.Get("Retry-After"), m[1]
	}
	guesser, other := browserFrom(t, "127.0.0.1"), browserFrom(t, "127.0.0.2")

	var first string
	for i, guess := range []string{token[:len(token)-1] + "8", "x", token + "x", ""} {
		code, retry, msg := login(guesser, guess)
		if code != http.StatusUnauthorized || retry != "" {
			t.Fatalf("wrong token %d: %d (Retry-After %q) %q, want 401", i+1, code, retry, msg)
		}
		if first == "" {
			first = msg
		} else if msg != first {
			t.Errorf("wrong tokens get different answers: %q and %q", first, msg)
		}
	}
	for _, tok := range []string{"wrong", token} {
		if code, retry, msg := login(guesser, tok); code != http.StatusTooManyRequests || retry != "20" || !strings.Contains(msg, "20 seconds") {
			t.Errorf("token %q after 4 wrong ones: %d (Retry-After %q) %q, want 429 saying 20 seconds", tok, code, retry, msg)
		}
	}
	if code, _, msg := login(other, token); code != http.StatusSeeOther {
		t.Errorf("a browser on another address with the right token: %d %q", code, msg)
	}
	clk.Advance(20 * time.Second)
	if code, _, msg := login(guesser, token); code != http.StatusSeeOther {
		t.Errorf("after the wait, the right token: %d %q", code, msg)
	}
	if code, _ := get(t, guesser, srv.URL+"/ui/login"); code != http.StatusOK {
		t.Errorf("the login page after logging in: %d", code)
	}
}

var loginErrorRe = regexp.MustCompile(`id="login-error">([^<]*)<`)

// browserFrom is client connecting from ip.
func browserFrom(t testing.TB, ip string) *http.Client {
	t.Helper()
	return withCookies(t, kallatest.ClientFrom(ip))
}

// withCookies makes c keep cookies and not follow redirects.
func withCookies(t testing.TB, c *http.Client) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// In the real scheduler the API's bearer token and the console's login
// count wrong tokens together: after 10 wrong bearer tokens from one
// address, that address's login with the right token is refused with 429
// and Retry-After, while a browser on another address logs in.
func TestGuessesCountAcrossAPIAndLogin(t *testing.T) {
	token := "ui-test-token-" + kalla.NewRunID()
	s := startScheduler(t, nil, "KALLA_API_TOKEN="+token)
	guesser, other := browserFrom(t, "127.0.0.1"), browserFrom(t, "127.0.0.2")
	csrf := formToken(t, guesser, s.url+"/ui/login")
	for i := range authlimit.DefaultBurst {
		req, _ := http.NewRequest("GET", s.url+"/api/jobs", nil)
		req.Header.Set("Authorization", "Bearer wrong-"+strconv.Itoa(i))
		resp, err := guesser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong bearer token %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, err := guesser.PostForm(s.url+"/ui/login", url.Values{"csrf": {csrf}, "token": {token}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("login with the right token after %d wrong bearer tokens: %d (Retry-After %q), want 429 with Retry-After",
			authlimit.DefaultBurst, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	csrf = formToken(t, other, s.url+"/ui/login")
	resp, err = other.PostForm(s.url+"/ui/login", url.Values{"csrf": {csrf}, "token": {token}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login from another address: %d, want 303", resp.StatusCode)
	}
}

// limitedConsole serves a console that asks for token, whose login is
// limited as lc says, over real HTTP.
func limitedConsole(t *testing.T, token string, lc authlimit.Config) *httptest.Server {
	t.Helper()
	eng, err := duckdb.Open(duckdb.Config{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	browser := duckdb.NewBrowser(eng)
	t.Cleanup(func() { browser.Close() })
	c, err := ui.New(ui.Config{Token: token, Browser: browser, Logger: kallatest.TestLogger(t, 0), Limiter: authlimit.New(lc)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := httptest.NewServer(c.Handler(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	return srv
}
