package ui_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kalla-dev/kalla/distributed"
)

var natsURLRe = regexp.MustCompile(`msg="nats server started" url=(\S+)`)

// The cluster page lists the executor that joined, as GET /api/cluster
// does, and the queue depth.
func TestBrowserCluster(t *testing.T) {
	s := startScheduler(t, nil)
	m := natsURLRe.FindStringSubmatch(s.Logs())
	if m == nil {
		t.Fatalf("no NATS URL in the scheduler's log")
	}
	logPath := filepath.Join(t.TempDir(), "executor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ex := exec.Command(kalladBin(t), "executor", "--bind-port", "-1", "--partitions", "1", "--external-host", "127.0.0.1",
		"--nats-url", m[1], "--staging-path", filepath.Join(s.dir, "staging"))
	ex.Stdout, ex.Stderr = logFile, logFile
	if err := ex.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ex.Process.Signal(syscall.SIGKILL)
		_ = ex.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("executor log:\n%s", b)
		}
	})
	var execs []distributed.ExecutorInfo
	waitFor(t, "the executor to join", func() bool {
		_, body := s.api(t, "GET", "/api/cluster", nil)
		var v struct {
			Executors []distributed.ExecutorInfo `json:"executors"`
		}
		_ = json.Unmarshal(body, &v)
		execs = v.Executors
		return len(execs) == 1
	})

	ctx, _ := newBrowser(t)
	run(t, ctx, "open the cluster page", chromedp.Navigate(s.url+"/ui/cluster"), chromedp.WaitVisible(chromedp.ID("executors")))
	screenshot(t, ctx, "cluster")
	rows := eval[[][]string](t, ctx, `[...document.querySelectorAll("#executors tbody tr")].map(r => [...r.cells].map(c => c.textContent))`)
	if len(rows) != 1 || rows[0][0] != execs[0].ID || rows[0][1] != execs[0].Host {
		t.Errorf("executors shown %v, the API lists %+v", rows, execs)
	}
	if got := text(t, ctx, "#queue-depth"); got != "0" {
		t.Errorf("queue depth %q, want 0", got)
	}
	if rows[0][2] != "0" || rows[0][3] != strconv.Itoa(execs[0].MaxTasks) {
		t.Errorf("tasks running %q of %q; the idle executor runs 0 of %d", rows[0][2], rows[0][3], execs[0].MaxTasks)
	}
}
