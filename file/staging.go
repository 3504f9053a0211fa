package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kalla-dev/kalla/distributed"
)

// Staging is a staging folder every process of a cluster shares (a volume,
// NFS, EFS) at the same path. Tasks read and write the staged files in
// place: Fetch and Output return the files' own paths and Publish has
// nothing to do.
type Staging struct {
	dir string
}

var _ distributed.Staging = (*Staging)(nil)

// NewStaging returns the staging folder dir (a path or file:// URI); it
// does no I/O.
func NewStaging(dir string) (*Staging, error) {
	abs, err := filepath.Abs(strings.TrimPrefix(dir, "file://"))
	if err != nil {
		return nil, fmt.Errorf("staging folder %q: %w", dir, err)
	}
	return &Staging{dir: abs}, nil
}

// String returns the folder's path.
func (s *Staging) String() string { return s.dir }

// path returns the local path of key.
func (s *Staging) path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(path.Clean("/"+filepath.ToSlash(key))))
}

// Create makes the folders keys and their parents.
func (s *Staging) Create(_ context.Context, keys ...string) error {
	for _, k := range keys {
		if err := os.MkdirAll(s.path(k), 0o755); err != nil {
			return fmt.Errorf("create staging folder: %w", err)
		}
	}
	return nil
}

// Exists reports whether the folder key exists.
func (s *Staging) Exists(_ context.Context, key string) (bool, error) {
	_, err := os.Stat(s.path(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("check staging folder: %w", err)
}

// List returns the keys of the regular files below the folder key, sorted.
func (s *Staging) List(_ context.Context, key string) ([]string, error) {
	root := s.path(key)
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(s.dir, p)
			if err != nil {
				return err
			}
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list staging folder: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

// RemoveAll removes the folder key.
//
// A task of the job may still be writing in the folder (it stops at its
// next heartbeat, when it sees the folder gone), so a file it creates while
// the folder is being emptied makes one pass fail with "directory not
// empty": RemoveAll then tries again until the folder is gone or ctx ends.
// A task cannot recreate the folder itself (see Output).
func (s *Staging) RemoveAll(ctx context.Context, key string) error {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := os.RemoveAll(s.path(key))
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("remove staging folder: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove staging folder: %w (still written to when %w)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Fetch returns the files' own paths: every process reads them in place.
func (s *Staging) Fetch(_ context.Context, keys []string, _ string) ([]string, error) {
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = s.path(k)
	}
	return paths, nil
}

// Output returns the folder of key itself: tasks write in place. Its
// parent is not created, so a task whose job's folder was removed fails to
// create it instead of recreating the job's folder.
func (s *Staging) Output(_ context.Context, key, _ string) (string, error) {
	return s.path(key), nil
}

// Publish does nothing: the files were written in place.
func (s *Staging) Publish(context.Context, string, string) error { return nil }
