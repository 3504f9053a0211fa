package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/kalla-dev/kalla"
)

// BenchmarkSubmitBind is the cost a submission pays for binding its job
// against its sources' columns (kalla.Runner.CheckBind), by source kind,
// beside its parts: the checks made before (Prepare: fields, sandbox,
// opening the sources) and an engine session alone. The job is the
// issue's three rules. docs/drafts/submitbind.md has the figures.
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
	for _, kind := range []struct{ name, left, right string }{
		{"parquet", parquetL, parquetR}, {"csv", csvL, csvR},
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
