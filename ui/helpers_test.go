package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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

// sched is a running `kallad scheduler`.
type sched struct {
	t       testing.TB
	cmd     *exec.Cmd
	url     string // http://host:port
	dir     string // --data-dir and --staging-path are below it
	logPath string
	token   string
	exited  chan struct{}
}

var listenRe = regexp.MustCompile(`msg="http api listening".* addr=(\S+)`)

// startScheduler starts `kallad scheduler` on free loopback ports, one job
// at a time, and waits until /ready answers. args are added to its command
// line, env to its environment.
func startScheduler(t testing.TB, args []string, env ...string) *sched {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "scheduler.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kalladBin(t), append([]string{"scheduler", "--http-port", "0", "--grpc-port", "-1", "--bind-host", "127.0.0.1",
		"--data-dir", filepath.Join(dir, "data"), "--staging-path", filepath.Join(dir, "staging"), "--partitions", "2", "--max-jobs", "1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sched{t: t, cmd: cmd, dir: dir, logPath: logPath, exited: make(chan struct{})}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "KALLA_API_TOKEN="); ok {
			s.token = v
		}
	}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		if t.Failed() {
			t.Logf("scheduler log:\n%s", s.logs())
		}
	})
	waitFor(t, "the scheduler to listen", func() bool {
		select {
		case <-s.exited:
			t.Fatalf("scheduler exited:\n%s", s.logs())
		default:
		}
		m := listenRe.FindStringSubmatch(s.logs())
		if m == nil {
			return false
		}
		// A scheduler bound to every address is reached on loopback.
		port := m[1][strings.LastIndex(m[1], ":")+1:]
		s.url = "http://127.0.0.1:" + port
		return true
	})
	waitFor(t, "/ready", func() bool {
		resp, err := http.Get(s.url + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

func (s *sched) logs() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// api calls the job API with the scheduler's token.
func (s *sched) api(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// submit submits job over the API and returns its run id.
func (s *sched) submit(t testing.TB, job map[string]any) string {
	t.Helper()
	code, body := s.api(t, "POST", "/api/jobs", job)
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

func (s *sched) job(t testing.TB, runID string) jobState {
	t.Helper()
	code, body := s.api(t, "GET", "/api/jobs/"+runID, nil)
	var v jobState
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("GET job %s: %d %s", runID, code, body)
	}
	return v
}

func (s *sched) waitState(t testing.TB, runID string, state kalla.JobState) jobState {
	t.Helper()
	var v jobState
	waitFor(t, "run "+runID+" to be "+string(state), func() bool {
		v = s.job(t, runID)
		return v.State == state
	})
	return v
}

// client is an HTTP client that keeps cookies and does not follow
// redirects, as a browser's requests are checked one by one.
func client(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
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
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
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
