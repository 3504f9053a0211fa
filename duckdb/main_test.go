package duckdb_test

import (
	"testing"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain stops the Postgres server the waterfall tests start.
func TestMain(m *testing.M) { kallatest.Main(m) }
