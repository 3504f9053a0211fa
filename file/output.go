package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kalla-dev/kalla"
)

// Output writes a job's results into a local folder. Files are written in a
// hidden folder inside it (.kalla-tmp-*, same file system) and renamed into
// place; summary.json is removed first and renamed in last, so a reader that
// sees summary.json sees that run's complete result.
//
// Publishing is serialised per folder by a lock file (.kalla-lock, flock),
// across the processes of a host and across hosts where the file system
// passes flock on (NFSv4 on Linux does), so two jobs writing one folder
// cannot interleave their renames: the run that publishes last leaves its
// whole set. Every file and the folder are fsynced before summary.json is
// renamed in, and the folder after, so a power loss cannot leave a
// summary.json beside files it does not describe.
//
// Each temporary folder is held, for the life of its job, by a lock on its
// .owner file; the next job to write the folder removes those whose owner
// died (a SIGKILL mid-publish), which the kernel tells by releasing the lock.
type Output struct {
	dir string

	mu     sync.Mutex
	owners map[string]*os.File // temporary folder → its locked .owner file
}

var _ kalla.Output = (*Output)(nil)

const (
	tmpPrefix = ".kalla-tmp-"
	lockName  = ".kalla-lock"
	ownerName = ".owner"
)

// OpenOutput opens a local output folder (a path or file:// URI) in an
// allowed folder, symlinks resolved.
func (f *Files) OpenOutput(_ context.Context, path string) (kalla.Output, error) {
	path = strings.TrimPrefix(path, "file://")
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, kalla.Invalid("output_path", "%q: %v", path, err)
	}
	if err := f.Paths.CheckPath(path); err != nil {
		return nil, kalla.Invalid("output_path", "%v", err)
	}
	if info, err := os.Stat(abs); err == nil && !info.IsDir() {
		return nil, kalla.Invalid("output_path", "%q is a file, not a folder", path)
	}
	return &Output{dir: abs, owners: map[string]*os.File{}}, nil
}

// Prepare creates the output folder and a temporary folder inside it, owned
// by this job, and removes the temporary folders of dead jobs.
func (o *Output) Prepare(ctx context.Context) (string, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", o.dir, err)
	}
	unlock, err := lockFolder(ctx, o.dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	removeLeftovers(o.dir)
	tmp, err := os.MkdirTemp(o.dir, tmpPrefix)
	if err != nil {
		return "", err
	}
	owner, err := lockFile(filepath.Join(tmp, ownerName), false)
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("own %s: %w", tmp, err)
	}
	o.mu.Lock()
	o.owners[tmp] = owner
	o.mu.Unlock()
	return tmp, nil
}

// Location implements kalla.Output.
func (o *Output) Location(name string) string { return filepath.Join(o.dir, name) }

// resultFiles are renamed in this order: summary.json last.
var resultFiles = []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.SummaryFile}

// Publish renames the result files into place, summary.json last, holding
// the folder's lock.
func (o *Output) Publish(ctx context.Context, dir string) error {
	names := publishNames(dir)
	for _, name := range names {
		if err := syncPath(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
	}
	unlock, err := lockFolder(ctx, o.dir)
	if err != nil {
		return err
	}
	defer unlock()
	switch err := os.Remove(o.Location(kalla.SummaryFile)); {
	case err == nil:
		// The removal must be durable before any file is replaced, or a
		// power loss could keep the old summary.json beside new files.
		if err := syncPath(o.dir); err != nil {
			return fmt.Errorf("sync %s: %w", o.dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("remove previous summary: %w", err)
	}
	for i, name := range names {
		if name == kalla.SummaryFile {
			// The files' new names must be durable before summary.json
			// says they are there.
			if err := syncPath(o.dir); err != nil {
				return fmt.Errorf("sync %s: %w", o.dir, err)
			}
		}
		if err := os.Rename(filepath.Join(dir, name), o.Location(name)); err != nil {
			return fmt.Errorf("move %s into place: %w", name, err)
		}
		if i == 0 {
			if err := testPause(ctx, dir); err != nil {
				return err
			}
		}
	}
	if err := syncPath(o.dir); err != nil {
		return fmt.Errorf("sync %s: %w", o.dir, err)
	}
	if err := o.release(dir); err != nil {
		return err
	}
	removeLeftovers(o.dir)
	return nil
}

// Discard removes the temporary folder.
func (o *Output) Discard(dir string) error { return o.release(dir) }

// release drops the ownership of dir and removes it.
func (o *Output) release(dir string) error {
	o.mu.Lock()
	owner := o.owners[dir]
	delete(o.owners, dir)
	o.mu.Unlock()
	err := os.RemoveAll(dir)
	if owner != nil {
		owner.Close()
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// syncPath fsyncs a file or folder.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeLeftovers removes the temporary folders in dir whose job died: no
// process holds their .owner lock. The caller holds dir's lock, so no
// folder is between its creation and its owner's lock.
func removeLeftovers(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		tmp := filepath.Join(dir, e.Name())
		owner, err := lockFile(filepath.Join(tmp, ownerName), true)
		switch {
		case errors.Is(err, errLocked):
			continue // its job is alive
		case err == nil:
			owner.Close()
		}
		os.RemoveAll(tmp)
	}
}
