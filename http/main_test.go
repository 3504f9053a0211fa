package kallahttp

import (
	"testing"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain fails a passing run that leaves a goroutine of Kalla, the NATS
// server or client running.
func TestMain(m *testing.M) { kallatest.MainWithLeakCheck(m, "kalla-dev/kalla", "nats-io/") }
