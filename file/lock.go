package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// errLocked reports a lock another open file holds.
var errLocked = errors.New("locked by another job")

// lockFile opens path and takes an exclusive flock on it without waiting:
// errLocked if another open file holds it. The lock lasts until the file
// is closed, or its process dies. With mustExist, a missing file is an
// error instead of being created.
func lockFile(path string, mustExist bool) (*os.File, error) {
	flags := os.O_RDWR
	if !mustExist {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// lockFolder takes dir's publish lock (the file .kalla-lock in it),
// waiting while another job holds it, until ctx is done. The lock file is
// left in place: removing it while a job waits on it would let two jobs
// hold "the" lock at once.
func lockFolder(ctx context.Context, dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockName)
	wait := time.Millisecond
	for first := true; ; first = false {
		f, err := lockFile(path, false)
		switch {
		case err == nil:
			return func() { f.Close() }, nil
		case !errors.Is(err, errLocked):
			return nil, fmt.Errorf("lock output folder %s: %w", dir, err)
		case first:
			testMarkWaiting()
		}
		// flock cannot be interrupted: poll, so that a cancelled job
		// stops waiting.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for another job publishing to %s: %w", dir, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
