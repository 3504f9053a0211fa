package cluster

import (
	"testing"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain fails the package if the tests leave goroutines of this package,
// the NATS server or its client running.
func TestMain(m *testing.M) { kallatest.MainWithLeakCheck(m, "kalla-dev/kalla", "nats-io/") }
