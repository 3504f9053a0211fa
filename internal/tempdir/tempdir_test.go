//go:build unix

package tempdir

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderEnv makes the test binary a process that creates a folder under
// the given parent, prints its path and waits to be killed.
const holderEnv = "TEMPDIR_TEST_HOLDER"

func TestMain(m *testing.M) {
	if parent := os.Getenv(holderEnv); parent != "" {
		d, err := Create(parent, slog.New(slog.DiscardHandler))
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString(d.Path + "\n")
		time.Sleep(time.Hour) // until killed
		runtime.KeepAlive(d)
	}
	os.Exit(m.Run())
}

// holder starts a process holding a folder under parent and returns it
// with the folder's path.
func holder(t *testing.T, parent string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("holder process: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, strings.TrimSpace(line)
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestOrphansOfKilledProcessesRemoved(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	_, liveDir := holder(t, parent)
	killed, deadDir := holder(t, parent)
	if err := killed.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = killed.Wait()
	// Folders that are not ours, or from before the lock: never touched.
	foreign := filepath.Join(parent, "kalla-task-123")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}

	d, err := Create(parent, log)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case exists(t, deadDir):
		t.Fatalf("the killed process's folder %s is still there", deadDir)
	case !exists(t, liveDir):
		t.Fatalf("the live process's folder %s was removed", liveDir)
	case !exists(t, foreign):
		t.Fatalf("a folder without a lock file was removed")
	}
	// Our own folder survives another process's start.
	RemoveOrphans(parent, log)
	if !exists(t, d.Path) {
		t.Fatal("a live folder of this process was taken for an orphan")
	}
	if err := d.Remove(); err != nil || exists(t, d.Path) {
		t.Fatalf("Remove: %v", err)
	}
}
