//go:build !unix

package tempdir

import (
	"errors"
	"os"
)

// Without flock a process cannot tell a dead owner from a live one: its
// folders are made unlocked, and no folder is ever taken for an orphan.

func lockOwn(*os.File) error { return nil }

func tryLock(*os.File) error { return errors.ErrUnsupported }
