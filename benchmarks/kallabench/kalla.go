package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/postgres"
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
// wires (DuckDB; local files and Postgres, with no allow-list; a local
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
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	runner := &kalla.Runner{
		Engine: engine, Sources: sources, Outputs: outputs, Logger: logger,
		StageDone: func(t kalla.StageTime) {
			name := "match+write"
			if t.Stage == kalla.StageStaging {
				name = "stage " + t.Source
			}
			run.Phases = append(run.Phases, benchPhase{Name: name, Seconds: t.Elapsed.Seconds()})
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
