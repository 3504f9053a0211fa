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
	"os"
	"sync"
	"testing"
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
