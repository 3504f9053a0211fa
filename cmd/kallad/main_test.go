package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// kalladBin is the kallad binary built once for the process tests.
var kalladBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kallad-test-")
	if err != nil {
		panic(err)
	}
	kalladBin = filepath.Join(dir, "kallad")
	build := exec.Command("go", "build", "-o", kalladBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build kallad: " + err.Error())
	}
	code := m.Run()
	kallatest.RunExitFuncs()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kallad runs the built binary in dir and returns stdout, stderr and the
// exit code.
func kallad(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	return kalladIn(t, dir, nil, args...)
}

// The README's first command: the bundled example reconciles.
func TestRunExample(t *testing.T) {
	t.Parallel()
	repo, _ := filepath.Abs("../..")
	job, err := os.ReadFile(filepath.Join(repo, "examples", "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Run a copy whose paths point into the repo and whose output is ours.
	var j kalla.Job
	if err := json.Unmarshal(job, &j); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for i := range j.Sources {
		j.Sources[i].URI = filepath.Join(repo, j.Sources[i].URI)
	}
	j.OutputPath = out
	jobPath := filepath.Join(out, "..", filepath.Base(out)+"-job.json")
	b, _ := json.Marshal(j)
	os.WriteFile(jobPath, b, 0o644)
	t.Cleanup(func() { os.Remove(jobPath) })

	stdout, stderr, code := kallad(t, out, "run", "--progress", "always", jobPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res kalla.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout is not the completion payload: %v\n%s", err, stdout)
	}
	if res.MatchedCount != 5 || res.UnmatchedLeftCount != 4 || res.UnmatchedRightCount != 3 || res.LeftCount != 8 || res.RightCount != 8 {
		t.Errorf("counts: %+v", res)
	}
	if _, err := uuid.Parse(res.RunID); err != nil {
		t.Errorf("run_id %q is not a UUID", res.RunID)
	}
	summary, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil || !strings.Contains(string(summary), res.RunID) {
		t.Errorf("summary.json: %v %s", err, summary)
	}
	for _, p := range []string{res.OutputPaths.Matched, res.OutputPaths.UnmatchedLeft, res.OutputPaths.UnmatchedRight} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("output %s: %v", p, err)
		}
	}
	for _, stage := range []string{"staging", "matching", "writing_results"} {
		if !strings.Contains(stderr, stage) {
			t.Errorf("progress on stderr lacks %q: %q", stage, stderr)
		}
	}
}

// Failures are one line on stderr, with exit 2 for a bad job and 1 for a
// failure while running, and never show a password.
func TestRunFailuresAreOneLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	inv := write("inv.csv", "invoice_id,amount\n1,1.00\n")
	cases := []struct {
		name string
		job  string
		code int
		says []string
	}{
		{"unknown field", `{"match_sql":"SELECT 1","primary_key":{}}`, 2, []string{"invalid job", "primary_key: unknown field"}},
		{"bad scheme", `{"match_sql":"SELECT 1","sources":[{"alias":"l","uri":"ftp://u:hunter2@h/x.csv"},{"alias":"r","uri":"` + inv + `"}],
			"output_path":"o","primary_keys":{"l":["id"],"r":["id"]}}`, 2, []string{`sources[0].uri: unsupported scheme "ftp"`, "u:xxxxx@h"}},
		{"missing table param", `{"match_sql":"SELECT 1","sources":[{"alias":"l","uri":"postgres://u:hunter2@127.0.0.1:1/db"},{"alias":"r","uri":"` + inv + `"}],
			"output_path":"o","primary_keys":{"l":["id"],"r":["id"]}}`, 2, []string{"sources[0].uri", "table"}},
		{"unreachable postgres", `{"match_sql":"SELECT 1","sources":[{"alias":"l","uri":"postgres://u:hunter2@127.0.0.1:1/db?table=t"},{"alias":"r","uri":"` + inv + `"}],
			"output_path":"o","primary_keys":{"l":["id"],"r":["invoice_id"]}}`, 1, []string{"127.0.0.1:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jobPath := write(strings.ReplaceAll(tc.name, " ", "_")+".json", tc.job)
			stdout, stderr, code := kallad(t, dir, "run", jobPath)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
			if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.HasPrefix(stderr, "kallad: ") {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			for _, s := range tc.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q lacks %q", stderr, s)
				}
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("password leaked: %q", stderr)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	_, stderr, code := kallad(t, t.TempDir())
	if code != 2 || !strings.Contains(stderr, "kallad run") {
		t.Errorf("no args: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = kallad(t, t.TempDir(), "frobnicate")
	if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	_, _, code = kallad(t, t.TempDir(), "run", "--memory-limit", "lots", filepath.Join("..", "..", "examples", "job.json"))
	if code == 0 {
		t.Errorf("--memory-limit lots was accepted")
	}
}
