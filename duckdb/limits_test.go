package duckdb_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A job that would spill more than MaxTempSize (--max-temp-size) fails
// with an error naming the setting, instead of filling the disk.
func TestMaxTempSizeFailsSpillingJob(t *testing.T) {
	if testing.Short() {
		t.Skip("spill test reads 2M rows")
	}
	t.Parallel()
	b := setup(t, duckdb.Config{MemoryLimit: "128MB", MaxTempSize: "1MB", TempDir: t.TempDir(), Threads: 2})
	inv := filepath.Join(b.dir, "inv.csv")
	pay := filepath.Join(b.dir, "pay.csv")
	ducktest.Query(t, "COPY (SELECT i AS invoice_id, md5(i::VARCHAR) AS note, (i % 100000 / 100)::DECIMAL(12,2) AS amount FROM range(2000000) t(i)) TO '"+inv+"'")
	ducktest.Query(t, "COPY (SELECT i AS payment_id, (i * 7) % 2000000 AS invoice_ref, md5((i*3)::VARCHAR) AS memo, ((i * 7) % 2000000 % 100000 / 100 + (i % 3) * 0.01)::DECIMAL(12,2) AS amount FROM range(2000000) t(i)) TO '"+pay+"'")
	job := b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
	_, err := b.runner.Run(context.Background(), job, nil)
	if err == nil || !strings.Contains(err.Error(), "max_temp_directory_size") {
		t.Fatalf("job past its spill limit: %v, want an error naming max_temp_directory_size", err)
	}
	t.Logf("error: %v", err)
}
