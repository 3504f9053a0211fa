package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// BenchmarkSubmitBind is the cost a submission pays for binding its job
// against its sources' columns (kalla.Runner.CheckBind), by source kind,
// beside its parts: the checks made before (Prepare: fields, sandbox,
// opening the sources) and an engine session alone. The job is the
// issue's three rules. docs/benchmarks.md has the figures.
func BenchmarkSubmitBind(b *testing.B) {
	runner, closeRunner, err := newRunner(engineOptions{Sessions: 4}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer closeRunner()
	db := seedRules(b)
	parquetL, parquetR := writeRulesFiles(b, b.TempDir(), "parquet")
	csvL, csvR := writeRulesFiles(b, b.TempDir(), "csv")
	ctx := context.Background()
	jobOf := func(left, right string) *kalla.Job {
		raw, err := json.Marshal(rulesJob(b, sharedKeyRules, left, right, ""))
		if err != nil {
			b.Fatal(err)
		}
		var job kalla.Job
		if err := json.Unmarshal(raw, &job); err != nil {
			b.Fatal(err)
		}
		return &job
	}
	b.Run("session", func(b *testing.B) {
		for b.Loop() {
			sess, err := runner.NewSession(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			sess.Close()
		}
	})
	// A CSV file beyond the sample (about 7 MB): the check reads its
	// head; binding it whole (bind_whole) scans every value for its types.
	bigCSV := filepath.Join(b.TempDir(), "big.csv")
	var big strings.Builder
	big.WriteString("invoice_id,customer_id,invoice_ref,amount,due_on\n")
	for i := range 200_000 {
		fmt.Fprintf(&big, "%d,%d,INV-%d,%d.25,2026-01-%02d\n", i, i%60, i, i%1000, 1+i%28)
	}
	if err := os.WriteFile(bigCSV, []byte(big.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	bigJob := jobOf(bigCSV, parquetR)
	b.Run("bind_whole/csv_7MB", func(b *testing.B) {
		for b.Loop() {
			srcs, _, err := runner.Prepare(ctx, bigJob, true)
			if err != nil {
				b.Fatal(err)
			}
			sess, err := runner.NewSession(ctx, srcs[:])
			if err == nil {
				_, err = runner.Bind(ctx, sess, bigJob, srcs, kalla.SchemaOnly)
				sess.Close()
			}
			kalla.CloseSources(srcs[:])
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, kind := range []struct{ name, left, right string }{
		{"parquet", parquetL, parquetR}, {"csv", csvL, csvR}, {"csv_7MB", bigCSV, parquetR},
		{"postgres", db.TableURI("invoices"), db.TableURI("payments")},
	} {
		job := jobOf(kind.left, kind.right)
		b.Run("prepare/"+kind.name, func(b *testing.B) {
			for b.Loop() {
				srcs, _, err := runner.Prepare(ctx, job, true)
				kalla.CloseSources(srcs[:])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("bind/"+kind.name, func(b *testing.B) {
			for b.Loop() {
				srcs, _, err := runner.Prepare(ctx, job, true)
				if err == nil {
					err = runner.CheckBind(ctx, job, srcs)
				}
				kalla.CloseSources(srcs[:])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
