package kallahttp

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// call sends GET url with token from c and returns the status, the
// Retry-After header and the body.
func call(t *testing.T, c *http.Client, url, token string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

// The guessing attack on the bearer token: wrong tokens from one address
// get the same 401 whether near the token or not, then 429 with
// Retry-After for every token, the right one too; another address and the
// console's in-process calls are not locked out; after the wait the right
// token works again.
func TestBearerTokenGuessing(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-0123456789"
	clk := kallatest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	b := setup(t, Config{Token: token, AuthLimiter: authlimit.New(authlimit.Config{Burst: 5, Every: 30 * time.Second, Now: clk.Now}),
		UI: func(api http.Handler) http.Handler {
			// A console calling the API in process, as ui does.
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", "/api/jobs", nil)
				req.RemoteAddr = "127.0.0.1:0"
				req.Header.Set("Authorization", "Bearer "+token)
				api.ServeHTTP(w, req)
			})
		}})
	jobs := b.url + "/api/jobs"
	guesser, other := kallatest.ClientFrom("127.0.0.1"), kallatest.ClientFrom("127.0.0.2")

	var first string
	for i, guess := range []string{token[:len(token)-1] + "8", "x", token + " x", "", "Bearer " + token} {
		code, retry, body := call(t, guesser, jobs, "z"+guess)
		if code != 401 || retry != "" {
			t.Fatalf("wrong token %d: %d (Retry-After %q) %s, want 401", i+1, code, retry, body)
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Errorf("wrong tokens get different answers: %s and %s", first, body)
		}
	}
	for _, tok := range []string{"wrong", token} {
		code, retry, body := call(t, guesser, jobs, tok)
		if code != 429 || retry != "30" || !strings.Contains(body, `"code":"too_many_attempts"`) {
			t.Errorf("token %q after 5 wrong ones: %d (Retry-After %q) %s, want 429 too_many_attempts, Retry-After 30", tok, code, retry, body)
		}
	}
	if code, _, _ := call(t, guesser, jobs, ""); code != 401 {
		t.Errorf("no token from the locked address: %d, want 401", code)
	}
	if code, _, body := call(t, other, jobs, token); code != 200 {
		t.Errorf("another address with the right token: %d %s", code, body)
	}
	if code, _, body := call(t, guesser, b.url+"/ui/", ""); code != 200 {
		t.Errorf("the console's in-process call while its host is locked: %d %s", code, body)
	}
	clk.Advance(29 * time.Second)
	if code, retry, _ := call(t, guesser, jobs, token); code != 429 || retry != "1" {
		t.Errorf("29 s later: %d, Retry-After %q, want 429 and 1", code, retry)
	}
	clk.Advance(time.Second)
	if code, _, body := call(t, guesser, jobs, token); code != 200 {
		t.Errorf("after the wait, the right token: %d %s", code, body)
	}
}
