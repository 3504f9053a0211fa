package ui_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// With KALLA_API_TOKEN set, the console asks for the token once: a wrong
// one is refused and every page stays closed; the right one opens them
// with a session cookie that is HttpOnly, SameSite=Strict, not the token,
// and not readable by scripts; no page holds the token; logging out
// closes them again.
func TestBrowserLogin(t *testing.T) {
	token := "ui-test-token-" + kalla.NewRunID()
	s := startScheduler(t, nil, "KALLA_API_TOKEN="+token)
	ctx, _ := newBrowser(t)

	run(t, ctx, "open the console", chromedp.Navigate(s.url+"/ui/cluster"), chromedp.WaitVisible(chromedp.ID("token")))
	screenshot(t, ctx, "login")
	run(t, ctx, "log in with a wrong token",
		chromedp.SetValue(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	run(t, ctx, "open a page without a session", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/ui/login") {
		t.Fatalf("without logging in the browser reached %s", loc)
	}

	run(t, ctx, "log in with the token",
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-page="runs"]`)))
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url + "/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, c := range cookies.Cookies {
		if c.Name != "kalla_session" && c.Name != "kalla_csrf" {
			continue
		}
		found++
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Secure || c.Path != "/ui/" {
			t.Errorf("cookie %s: HttpOnly %v, SameSite %q, Secure %v, Path %q; want HttpOnly, Strict, not Secure over plain HTTP, /ui/",
				c.Name, c.HTTPOnly, c.SameSite, c.Secure, c.Path)
		}
		if strings.Contains(c.Value, token) || len(c.Value) < 32 {
			t.Errorf("cookie %s holds the token or too short a value: %q", c.Name, c.Value)
		}
	}
	if found != 2 {
		t.Errorf("found %d of the console's 2 cookies: %+v", found, cookies.Cookies)
	}
	if got := eval[string](t, ctx, `document.cookie`); got != "" {
		t.Errorf("scripts can read the cookies: %q", got)
	}
	for _, page := range []string{"/ui/", "/ui/submit", "/ui/cluster"} {
		run(t, ctx, "open "+page, chromedp.Navigate(s.url+page), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if html := eval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, token) {
			t.Errorf("page %s holds the API token", page)
		}
	}

	// The live data and the forms refuse a client without the session.
	c := client(t)
	if code, _ := get(t, c, s.url+"/ui/live/runs"); code != http.StatusUnauthorized {
		t.Errorf("live data without a session: %d, want 401", code)
	}
	if code, _ := get(t, c, s.url+"/ui/"); code != http.StatusSeeOther {
		t.Errorf("runs list without a session: %d, want a redirect to the login", code)
	}

	// Behind a TLS proxy that says so, the cookies are Secure.
	req, _ := http.NewRequest("GET", s.url+"/ui/login", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].Name != "kalla_csrf" || !cs[0].Secure || !cs[0].HttpOnly {
		t.Errorf("cookies behind a TLS proxy: %+v, want kalla_csrf Secure and HttpOnly", cs)
	}

	run(t, ctx, "log out", chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.CSS(`body[data-page="login"]`)))
	run(t, ctx, "open a page after logging out", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
}

// Without a token the console answers loopback clients only, like the API.
func TestProtectedModeRefusesOtherHosts(t *testing.T) {
	ip := kallatest.NonLoopbackIP(t)
	s := startScheduler(t, []string{"--bind-host", "0.0.0.0"})
	u, _ := url.Parse(s.url)
	remote := "http://" + ip + ":" + u.Port()
	code, body := get(t, client(t), remote+"/ui/")
	if code != http.StatusForbidden || !strings.Contains(body, "KALLA_API_TOKEN") {
		t.Errorf("from %s: %d, want 403 naming KALLA_API_TOKEN\n%s", ip, code, body)
	}
	if code, _ := get(t, client(t), s.url+"/ui/"); code != http.StatusOK {
		t.Errorf("from loopback: %d, want 200", code)
	}
}

// --ui=false leaves /ui/ to the API's 404.
func TestConsoleOff(t *testing.T) {
	s := startScheduler(t, []string{"--ui=false"})
	if code, body := get(t, client(t), s.url+"/ui/"); code != http.StatusNotFound || !strings.Contains(body, "no_such_route") {
		t.Errorf("/ui/ with --ui=false: %d %s", code, body)
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken loads page with c and returns its form's CSRF token.
func formToken(t *testing.T, c *http.Client, page string) string {
	t.Helper()
	_, body := get(t, c, page)
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in %s", page)
	}
	return m[1]
}

// A cancel POST is refused without the form's token, with another
// browser's token, or from another site; the running job is untouched.
// The console's own form cancels it.
func TestCSRF(t *testing.T) {
	s := startScheduler(t, nil)
	slow := exampleJob(t, t.TempDir())
	slow["match_sql"] = slowMatchSQL
	runID := s.submit(t, slow)
	s.waitState(t, runID, kalla.JobRunning)
	page := s.url + "/ui/runs/" + runID
	cancelURL := page + "/cancel"

	victim := client(t)
	token := formToken(t, victim, page)
	other := client(t)
	otherToken := formToken(t, other, page)

	post := func(c *http.Client, form url.Values, header ...string) int {
		req, _ := http.NewRequest("POST", cancelURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		c      *http.Client
		form   url.Values
		header []string
	}{
		{"no cookie, no token", client(t), url.Values{}, nil},
		{"cookie, no token", victim, url.Values{}, nil},
		{"another browser's token", victim, url.Values{"csrf": {otherToken}}, nil},
		{"a made-up token", victim, url.Values{"csrf": {strings.Repeat("A", len(token))}}, nil},
		{"another site's page (Origin)", victim, url.Values{"csrf": {token}}, []string{"Origin", "http://evil.example"}},
		{"another site's page (Sec-Fetch-Site)", victim, url.Values{"csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}},
	} {
		if code := post(tc.c, tc.form, tc.header...); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, code)
		}
	}
	var job jobState
	if s.Job(t, runID, &job); job.State != kalla.JobRunning {
		t.Fatalf("after the refused posts the job is %s, want still running", job.State)
	}
	if code := post(victim, url.Values{"csrf": {token}}); code != http.StatusSeeOther {
		t.Fatalf("the console's own cancel: %d, want 303", code)
	}
	s.waitState(t, runID, kalla.JobCancelled)
}

// Text that a user controls (a source value, a job field, the error a job
// ends with) is shown as text, never run as HTML; secrets in the job's URIs
// appear on no page.
func TestBrowserEscapesAndMasks(t *testing.T) {
	s := startScheduler(t, nil)
	ctx, _ := newBrowser(t)
	const payload = `<img src=x onerror="window.kallaXSS=1"><script>window.kallaXSS=2</script>`

	// A source whose key holds the payload: the row is unmatched.
	dir := t.TempDir()
	left := filepath.Join(dir, "invoices.csv")
	src, err := os.ReadFile(filepath.Join(repoDir(t), "examples", "invoices.csv"))
	if err != nil {
		t.Fatal(err)
	}
	row := "\"INV-" + strings.ReplaceAll(payload, `"`, `""`) + "\",Evil Corp,2026-10-10,1.00,EUR\n"
	if err := os.WriteFile(left, append(src, row...), 0o644); err != nil {
		t.Fatal(err)
	}
	// The output folder's name holds it too, and the callback URL secrets.
	job := exampleJob(t, filepath.Join(dir, "out-"+strings.ReplaceAll(payload, "/", "")))
	job["sources"].([]any)[0].(map[string]any)["uri"] = left
	const cbSecret, tokSecret = "cb-secret-4711", "tok-secret-0815"
	job["callback_url"] = "http://kalla:" + cbSecret + "@127.0.0.1:9/hook?token=" + tokSecret
	okID := s.submit(t, job)
	s.waitState(t, okID, kalla.JobCompleted)

	// A job that fails while running with an error quoting the payload: a
	// value of the source that does not convert. (A column named by the
	// payload is a 400 at submission now, which binds the rules.)
	bad := exampleJob(t, t.TempDir())
	bad["sources"].([]any)[0].(map[string]any)["uri"] = left
	bad["match_sql"] = `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
		AND CASE WHEN i.customer = 'Evil Corp' THEN CAST(i.invoice_id AS INTEGER) > 0 ELSE true END`
	badID := s.submit(t, bad)
	s.waitState(t, badID, kalla.JobFailed)

	pages := []string{"/ui/", "/ui/runs/" + okID, "/ui/runs/" + badID, "/ui/runs/" + okID + "/rows/unmatched_left?q=" + url.QueryEscape("INV-"+payload)}
	for _, p := range pages {
		run(t, ctx, "open "+p, chromedp.Navigate(s.url+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if n := eval[int](t, ctx, `document.querySelectorAll("main img, main script, body > script:not([src])").length`); n != 0 {
			t.Errorf("%s: the payload became %d elements", p, n)
		}
		if eval[bool](t, ctx, `window.kallaXSS !== undefined`) {
			t.Errorf("%s: the payload ran", p)
		}
		html := eval[string](t, ctx, `document.documentElement.outerHTML`)
		for _, secret := range []string{cbSecret, tokSecret} {
			if strings.Contains(html, secret) {
				t.Errorf("%s shows the secret %q", p, secret)
			}
		}
	}
	// The payload is there, as text: on the rows page (the value), the run
	// pages (the output folder, the error).
	for _, p := range pages[1:] {
		run(t, ctx, "open "+p, chromedp.Navigate(s.url+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if !eval[bool](t, ctx, `document.body.innerText.includes('<img src=x onerror="window.kallaXSS=1">')`) {
			t.Errorf("%s does not show the payload as text", p)
		}
	}
	c := client(t)
	for _, p := range append(pages, "/ui/live/runs", "/ui/live/runs/"+okID) {
		_, body := get(t, c, s.url+p)
		for _, secret := range []string{cbSecret, tokSecret} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows the secret %q", p, secret)
			}
		}
		if strings.Contains(body, "<img src=x") {
			t.Errorf("%s holds the payload unescaped", p)
		}
	}
}
