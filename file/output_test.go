package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/file"
)

// Sources and outputs are refused outside the allowed folders, also
// through a symlink inside one, with the field named.
func TestFilesStayInAllowedFolders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	allowed, outside := filepath.Join(base, "allowed"), filepath.Join(base, "outside")
	for _, d := range []string{allowed, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string) {
		if err := os.WriteFile(p, []byte("id\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(allowed, "a.csv"))
	write(filepath.Join(outside, "secret.csv"))
	if err := os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(allowed, "b.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "out")); err != nil {
		t.Fatal(err)
	}
	paths, err := kalla.ParsePathList("KALLA_ALLOW_PATHS", allowed)
	if err != nil {
		t.Fatal(err)
	}
	f := &file.Files{Paths: paths}

	if _, err := f.OpenSource(ctx, filepath.Join(allowed, "a.csv")); err != nil {
		t.Errorf("allowed source: %v", err)
	}
	for _, uri := range []string{
		filepath.Join(outside, "secret.csv"),
		"file://" + filepath.Join(outside, "secret.csv"),
		filepath.Join(allowed, "b.csv"),
		filepath.Join(allowed, "*.csv"), // the glob matches b.csv, a link outside
		filepath.Join(allowed, "out", "secret.csv"),
		filepath.Join(outside, "nothing-*.csv"), // refused, not "no file matches": no oracle
	} {
		_, err := f.OpenSource(ctx, uri)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "uri" || !strings.Contains(v.Message, "KALLA_ALLOW_PATHS") {
			t.Errorf("source %s: got %v, want a uri error naming KALLA_ALLOW_PATHS", uri, err)
		}
	}
	if _, err := f.OpenOutput(ctx, filepath.Join(allowed, "results", "2026-10")); err != nil {
		t.Errorf("allowed output: %v", err)
	}
	for _, p := range []string{outside, filepath.Join(allowed, "out", "results"), filepath.Join(allowed, "..", "outside")} {
		_, err := f.OpenOutput(ctx, p)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "output_path" {
			t.Errorf("output %s: got %v, want an output_path error", p, err)
		}
	}
}

// writeResult fills a prepared folder as the engine does.
func writeResult(t *testing.T, dir, tag string) {
	t.Helper()
	for _, name := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.SummaryFile} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(tag), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A second publish to a folder waits for the first (in this process the
// lock file is held by another open file, as by another process), and a
// dead job's temporary folder is removed by the next one while a live
// job's is kept.
func TestOutputPublishLockAndLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")
	o1, err := file.OpenOutput(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := file.OpenOutput(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp1, err := o1.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A leftover of a killed job: no process holds its owner lock.
	dead := filepath.Join(dir, ".kalla-tmp-dead")
	if err := os.MkdirAll(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, ".owner"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp2, err := o2.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead job's folder kept: %v", err)
	}
	if _, err := os.Stat(tmp1); err != nil {
		t.Errorf("live job's folder removed: %v", err)
	}
	writeResult(t, tmp1, "one")
	writeResult(t, tmp2, "two")

	// Hold the folder's lock as another process would.
	held, err := os.OpenFile(filepath.Join(dir, ".kalla-lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(held); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o1.Publish(ctx, tmp1) }()
	// It cannot finish while the lock is held: summary.json does not
	// appear. Cancelling a waiting publish stops it.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := o2.Publish(cctx, tmp2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("publish under a held lock: got %v, want it to wait until cancelled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, kalla.SummaryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("summary.json published under a held lock: %v", err)
	}
	held.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.SummaryFile} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "one" {
			t.Errorf("%s = %q, %v; want one's", name, b, err)
		}
	}
	if err := o2.Discard(tmp2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".kalla-tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// flock takes an exclusive lock on f, as another kallad process would.
func flock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
