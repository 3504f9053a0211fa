package file

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// testHookEnv names a folder through which the process tests watch and
// stop a publish at a known point (to SIGKILL it there, or to hold a
// second job behind its lock). It is for tests only: operators never set
// it. Unset, the hooks do nothing.
const testHookEnv = "KALLA_TEST_PUBLISH_HOOK_DIR"

// testMark creates <hook dir>/<temporary folder name>.<what>, telling the
// test that the publish of tmp reached that point.
func testMark(tmp, what string) {
	if dir := os.Getenv(testHookEnv); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, filepath.Base(tmp)+"."+what), nil, 0o644)
	}
}

// testMarkWaiting creates <hook dir>/lock-*.waiting, telling the test that
// a job waits for a folder's lock.
func testMarkWaiting() {
	if dir := os.Getenv(testHookEnv); dir != "" {
		if f, err := os.CreateTemp(dir, "lock-*.waiting"); err == nil {
			f.Close()
		}
	}
}

// testPause marks the publish of tmp "paused" (its first file is renamed
// into place, summary.json is not) and waits until the test creates
// <hook dir>/<temporary folder name>.resume.
func testPause(ctx context.Context, tmp string) error {
	dir := os.Getenv(testHookEnv)
	if dir == "" {
		return nil
	}
	testMark(tmp, "paused")
	resume := filepath.Join(dir, filepath.Base(tmp)+".resume")
	for {
		if _, err := os.Stat(resume); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
