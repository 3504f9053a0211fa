// Package tempdir gives a process its own folder under a temp dir that
// several processes may share (executors on one host share the staging
// path, where DuckDB spills), and removes the folders of processes that
// died without removing theirs (SIGKILL, OOM kill, power loss).
//
// Ownership is an flock on a file in the folder, held for the life of the
// process: the kernel releases it when the process dies, however it dies.
// So a folder whose lock can be taken belongs to no live process.
package tempdir

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// Prefix starts the name of every folder Create makes.
	Prefix = "kalla-"
	// lockName is the lock file in each folder. A kalla-* folder without
	// one (made by an older kallad, or by someone else) is never removed.
	lockName = ".kalla-lock"
	// initPrefix names a folder being set up: it is locked before it is
	// renamed to Prefix*, so no other process ever sees an unlocked live
	// folder. One left by a crash mid-setup is removed after initMaxAge.
	initPrefix = ".kalla-init-"
	initMaxAge = time.Hour
)

// Dir is a folder owned by this process while it holds its lock.
type Dir struct {
	Path string
	lock *os.File
}

// Create removes the orphaned folders under parent (the system temp dir
// when empty), then makes a new folder there and locks it until Remove.
func Create(parent string, log *slog.Logger) (*Dir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create temp dir %s: %w", parent, err)
	}
	RemoveOrphans(parent, log)
	tmp, err := os.MkdirTemp(parent, initPrefix)
	if err != nil {
		return nil, fmt.Errorf("create temp dir under %s: %w", parent, err)
	}
	lock, err := os.OpenFile(filepath.Join(tmp, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = lockOwn(lock)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("lock temp dir %s: %w", tmp, err)
	}
	path := filepath.Join(parent, Prefix+strings.TrimPrefix(filepath.Base(tmp), initPrefix))
	if err := os.Rename(tmp, path); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create temp dir %s: %w", path, err)
	}
	return &Dir{Path: path, lock: lock}, nil
}

// Remove deletes the folder and releases its lock.
func (d *Dir) Remove() error {
	err := os.RemoveAll(d.Path)
	d.lock.Close()
	if err != nil {
		return fmt.Errorf("remove temp dir %s: %w", d.Path, err)
	}
	return nil
}

// RemoveOrphans removes the folders under parent whose process is gone;
// failures are logged, not returned: a leftover folder must not stop a
// start.
func RemoveOrphans(parent string, log *slog.Logger) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		log.Warn("look for orphaned temp folders", "dir", parent, "err", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(parent, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), Prefix):
			removeIfOrphan(path, log)
		case strings.HasPrefix(e.Name(), initPrefix):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > initMaxAge {
				removeIfOrphan(path, log)
			}
		}
	}
}

func removeIfOrphan(path string, log *slog.Logger) {
	lock, err := os.OpenFile(filepath.Join(path, lockName), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return // not ours, or from an older version: leave it
	}
	if err != nil {
		log.Warn("check temp folder", "dir", path, "err", err)
		return
	}
	defer lock.Close()
	if err := tryLock(lock); err != nil {
		return // its process is alive
	}
	if err := os.RemoveAll(path); err != nil {
		log.Warn("remove orphaned temp folder", "dir", path, "err", err)
		return
	}
	log.Info("removed the temp folder of a process that is gone", "dir", path)
}
