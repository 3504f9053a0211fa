package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/postgres"
	"github.com/kalla-dev/kalla/s3"
)

// kallaChildCommand is the hidden first argument that makes kallabench run
// one Kalla job (kallaSpec as JSON in the next argument) as `kallad run`
// does, and print a benchRun as JSON.
const kallaChildCommand = "__kalla"

// kallaSpec is what the Kalla child needs.
type kallaSpec struct {
	Job    string        `json:"job"`
	Engine engineOptions `json:"engine"`
}

// runKallaChild runs the job with the engine, sources and output `kallad run`
// wires (DuckDB; local files, Postgres and S3, with no allow-list; a local
// output folder), and takes its phases from the Runner's stage durations.
func (c *benchCommand) runKallaChild(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one JSON argument", kallaChildCommand)
	}
	var spec kallaSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("decode Kalla spec: %w", err)
	}
	run, err := runKalla(ctx, spec)
	if err != nil {
		fmt.Fprintln(c.Stderr, "kallabench: kalla:", kalla.RedactText(err.Error()))
		return err
	}
	return json.NewEncoder(c.Stdout).Encode(run)
}

func runKalla(ctx context.Context, spec kallaSpec) (benchRun, error) {
	var run benchRun
	logger, err := newLogger(spec.Engine)
	if err != nil {
		return run, err
	}
	f, err := os.Open(spec.Job)
	if err != nil {
		return run, fmt.Errorf("read job: %w", err)
	}
	job, err := kalla.DecodeJob(f)
	f.Close()
	if err != nil {
		return run, fmt.Errorf("read job %s: %w", spec.Job, err)
	}
	engine, err := duckdb.Open(duckdb.Config{
		MemoryLimit: spec.Engine.MemoryLimit,
		TempDir:     spec.Engine.TempDir,
		MaxTempSize: spec.Engine.MaxTempSize,
		Threads:     spec.Engine.Partitions,
		Logger:      logger,
	})
	if err != nil {
		return run, err
	}
	defer engine.Close()
	sources := kalla.NewSourceRegistry()
	sources.Register(file.OpenSource, "file")
	sources.Register(postgres.Opener(nil, postgres.Config{}), "postgres", "postgresql")
	sources.Register(s3.New(s3.Config{Logger: logger}).OpenSource, "s3")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	// Sources staged at the same time (the Runner stages row sources at
	// once) make one phase, from the first start to the last end, named
	// after them in alias order.
	var (
		stagedFrom, stagedTo time.Time
		staged               []string
	)
	runner := &kalla.Runner{
		Engine: engine, Sources: sources, Outputs: outputs, Logger: logger,
		StageDone: func(t kalla.StageTime) {
			now := time.Now()
			if t.Stage != kalla.StageStaging {
				run.Phases = append(run.Phases, benchPhase{Name: "match+write", Seconds: t.Elapsed.Seconds()})
				return
			}
			began := now.Add(-t.Elapsed)
			if len(staged) > 0 && began.Before(stagedTo) {
				staged = append(staged, t.Source)
				slices.Sort(staged)
				stagedFrom, stagedTo = minTime(stagedFrom, began), now
				run.Phases[len(run.Phases)-1] = benchPhase{Name: "stage " + strings.Join(staged, "+"), Seconds: stagedTo.Sub(stagedFrom).Seconds()}
				return
			}
			staged, stagedFrom, stagedTo = []string{t.Source}, began, now
			run.Phases = append(run.Phases, benchPhase{Name: "stage " + t.Source, Seconds: t.Elapsed.Seconds()})
		},
	}
	res, err := runner.Run(ctx, job, nil)
	if err != nil {
		return run, err
	}
	run.Counts = benchdata.ResultCounts(res)
	run.Rules = res.Rules
	return run, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// newLogger logs as `kallad run` does: to stderr, secrets masked.
func newLogger(o engineOptions) (*slog.Logger, error) {
	level, err := parseLevel(o.LogLevel)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if o.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(kalla.RedactLogs(h)), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: must be debug, info, warn or error", s)
	}
	return l, nil
}
