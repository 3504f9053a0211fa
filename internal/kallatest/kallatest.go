// Package kallatest starts the real services Kalla's tests run against, so
// that adapters are tested against the software they talk to, never a mock.
//
// A test package that uses a service calls Main from its TestMain, so that
// the servers it started are stopped when its tests are done:
//
//	func TestMain(m *testing.M) { kallatest.Main(m) }
//
// and then, in a test:
//
//	db := kallatest.Postgres(t).NewDatabase(t) // a fresh database, dropped after t
//	db.Exec(t, `CREATE TABLE invoices (id int PRIMARY KEY, amount numeric(12,2))`)
//	uri := db.TableURI("invoices") // postgres://kalla:...@127.0.0.1:port/kt_...?sslmode=disable&table=invoices
package kallatest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

// Main runs the tests of m, stops the servers this package started for them,
// and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	RunExitFuncs()
	os.Exit(code)
}

// MainWithLeakCheck is Main for packages whose tests must end every
// goroutine they start: when the tests pass, it waits up to five seconds
// for each goroutine whose stack contains one of stackParts (such as
// "kalla-dev/kalla" or "nats-io/") to end, and fails the run, printing
// their stacks, if any is left. The check runs before the servers this
// package started are stopped, so stackParts should not match this package's
// own goroutines in a package that starts servers.
func MainWithLeakCheck(m *testing.M, stackParts ...string) {
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(5*time.Second, stackParts); leaks != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaks)
			code = 1
		}
	}
	RunExitFuncs()
	os.Exit(code)
}

// leakedGoroutines waits up to wait for every goroutine whose stack
// contains one of stackParts to end, and returns the stacks of those that
// did not.
func leakedGoroutines(wait time.Duration, stackParts []string) string {
	deadline := time.Now().Add(wait)
	for {
		var leaks []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "testing.(*M).Run") || strings.Contains(g, "leakedGoroutines") {
				continue
			}
			if slices.ContainsFunc(stackParts, func(p string) bool { return strings.Contains(g, p) }) {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AtExit registers fn to run when Main ends (last registered, first run), for
// helpers that start processes which must not outlive the test binary.
func AtExit(fn func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitFuncs = append(exitFuncs, fn)
}

// RunExitFuncs runs and forgets the functions given to AtExit. Main calls it;
// a TestMain that cannot use Main calls it after m.Run.
func RunExitFuncs() {
	exitMu.Lock()
	fns := exitFuncs
	exitFuncs = nil
	exitMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Timeless returns r without what differs between two runs of the same job:
// elapsed times (the job's and each rule's) and the output locations.
func Timeless(r kalla.Result) kalla.Result {
	r.ElapsedMS, r.OutputPaths = 0, kalla.OutputPaths{}
	r.Rules = append([]kalla.RuleCount(nil), r.Rules...)
	for i := range r.Rules {
		r.Rules[i].ElapsedMS = 0
	}
	return r
}
