//go:build unix

package tempdir

import (
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting. flock locks belong
// to the open file, so a second open of the same file, even in this
// process, cannot take it.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// lockOwn locks the file of a folder this process makes.
func lockOwn(f *os.File) error { return tryLock(f) }
