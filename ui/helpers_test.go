package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain fails a passing run that leaves a goroutine of Kalla or of the
// browser driver running.
func TestMain(m *testing.M) {
	kallatest.AtExit(func() {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	})
	kallatest.MainWithLeakCheck(m, "kalla-dev/kalla", "chromedp/")
}

// built is the kallad binary, built once by the first test that needs it.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func kalladBin(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "kallad-ui-test-")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "kallad")
		out, err := exec.Command("go", "build", "-o", built.bin, "../cmd/kallad").CombinedOutput()
		if err != nil {
			built.err = err
			built.bin = string(out)
		}
	})
	if built.err != nil {
		t.Fatalf("build kallad: %v\n%s", built.err, built.bin)
	}
	return built.bin
}

// sched is a running `kallad scheduler` (kallatest.Scheduler) with one
// job slot.
type sched struct {
	*kallatest.Scheduler
	url string // http://host:port
	dir string // --data-dir; --staging-path is below it
}

// startScheduler starts `kallad scheduler` on free loopback ports, one job
// at a time, and waits until /ready answers. args are added to its command
// line, env to its environment.
func startScheduler(t testing.TB, args []string, env ...string) *sched {
	t.Helper()
	s := kallatest.StartScheduler(t, kallatest.SchedulerConfig{Bin: kalladBin(t), Args: append([]string{"--max-jobs", "1"}, args...), Env: env})
	return &sched{Scheduler: s, url: s.URL, dir: s.DataDir}
}

// api calls the job API with the scheduler's token.
func (s *sched) api(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return s.Call(t, method, path, b)
}

// submit submits job over the API and returns its run id.
func (s *sched) submit(t testing.TB, job map[string]any) string {
	t.Helper()
	code, body := s.Submit(t, job)
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", code, body)
	}
	return job["run_id"].(string)
}

// jobState is the part of GET /api/jobs/{run_id} the tests read.
type jobState struct {
	State  kalla.JobState `json:"state"`
	Result *kalla.Result  `json:"result"`
}

func (s *sched) waitState(t testing.TB, runID string, state kalla.JobState) jobState {
	t.Helper()
	var v jobState
	s.WaitState(t, runID, state, &v)
	return v
}

// client is an HTTP client that keeps cookies and does not follow
// redirects, as a browser's requests are checked one by one.
func client(t testing.TB) *http.Client {
	t.Helper()
	return withCookies(t, &http.Client{})
}

// get fetches url with c and returns the status and body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	kallatest.WaitFor(t, what, 2*time.Minute, cond)
}

// repoDir is the repository's root.
func repoDir(t testing.TB) string {
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// exampleJob is the bundled example as an API job writing to out.
func exampleJob(t testing.TB, out string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoDir(t), "examples", "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	for _, s := range job["sources"].([]any) {
		src := s.(map[string]any)
		src["uri"] = filepath.Join(repoDir(t), src["uri"].(string))
	}
	job["run_id"] = kalla.NewRunID()
	job["output_path"] = out
	return job
}

// slowMatchSQL keeps a job matching for hours, so that it is running when
// the test acts on it (the same query as cmd/kallad's process tests).
const slowMatchSQL = `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
WHERE (SELECT count(*) FROM (SELECT unnest(generate_series(1, 200000)) AS range) a, (SELECT unnest(generate_series(1, 1000000)) AS range) b WHERE a.range + b.range < 0) = 0`

// newBrowser starts a headless Chromium for the test; downloads go to
// the folder it returns.
func newBrowser(t *testing.T) (context.Context, string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("chromium-headless-shell"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no chromium on a CI run: scripts/test.sh installs it (apt-get install chromium)")
			}
			t.Skip("no chromium: scripts/test.sh installs it (apt-get install chromium)")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1400, 1000))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		// Each download is saved under its GUID and reported by events:
		// with plain "allow", Chromium puts an empty file of the final name
		// in the folder while it writes a .crdownload, and a test that
		// found that name first read an empty CSV.
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true),
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, downloads
}

// run runs browser actions, failing the test on an error.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// text returns the text of the element the CSS selector sel finds.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText polls the page (no reload) until sel's text is want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	waitFor(t, sel+" to read "+want, func() bool { return text(t, ctx, sel) == want })
}

// screenshot saves the page as docs/console-NAME.png when
// KALLA_UI_SCREENSHOTS names a folder (relative to the repository), so
// that normal test runs leave the tree as it is.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("KALLA_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoDir(t), dir)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
