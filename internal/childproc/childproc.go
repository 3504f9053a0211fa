// Package childproc starts child processes that do not outlive the
// process that started them, and stops them gracefully: the benchmarks'
// kallad processes and the throwaway Postgres of tests and benchmarks.
package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Start starts cmd with a parent-death signal, so that the child does not
// outlive this process even when it is killed. The signal fires when the
// thread that started the child exits, so that thread stays locked to a
// goroutine that waits for the child. exited is closed, and *waitErr set,
// when the child ends.
func Start(cmd *exec.Cmd, sig syscall.Signal, waitErr *error) (exited chan struct{}, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		*waitErr = cmd.Wait()
		close(exited)
	}()
	return exited, <-started
}

// Stop sends sig to cmd's process and waits until exited is closed; after
// grace it kills the process and waits again. It reports whether the
// process ended within grace.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, grace time.Duration) bool {
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
		return false
	}
}
