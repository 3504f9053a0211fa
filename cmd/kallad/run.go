package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
)

// RunCommand runs one job in process: `kallad run [flags] JOB.json`.
type RunCommand struct {
	Stdout, Stderr io.Writer
}

// Run parses args, runs the job, prints the completion payload on stdout,
// and reports progress on stderr when it is a terminal.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kallad run", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var eng engineOptions
	var logs logOptions
	if err := commonFlags(fs, &eng, &logs, "warn"); err != nil {
		return c.fail(err)
	}
	progressFlag := fs.String("progress", "auto", "progress display on stderr: auto (when a terminal), always, never")
	dryRun := fs.Bool("dry-run", false, "run the job and print its counts, per rule too, without writing anything: output_path is checked, not created")
	var jobTimeout time.Duration
	if err := durationFlag(fs, &jobTimeout, "job-timeout", 0, "KALLA_JOB_TIMEOUT", "stop and fail the job when it runs longer; 0 for no limit (env KALLA_JOB_TIMEOUT)"); err != nil {
		return c.fail(err)
	}
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "Usage: kallad run [flags] JOB.json   (JOB.json may be - for stdin)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	operands, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 1 {
		fs.Usage()
		return errUsage
	}
	if jobTimeout < 0 {
		return c.fail(fmt.Errorf("--job-timeout %s: must not be negative (0 for no limit)", jobTimeout))
	}
	logger, err := newLogger(logs, c.Stderr)
	if err != nil {
		return c.fail(err)
	}
	job, err := readJob(operands[0])
	if err != nil {
		return c.fail(err)
	}
	runner, closeRunner, err := newRunner(eng, logger)
	if err != nil {
		return c.fail(err)
	}
	defer closeRunner()

	show := *progressFlag == "always" || (*progressFlag == "auto" && isTerminal(c.Stderr))
	var display *progressDisplay
	var report func(kalla.Progress)
	if show {
		display = newProgressDisplay(c.Stderr)
		report = display.update
	}
	jobCtx, cancel := kalla.WithJobTimeout(ctx, jobTimeout)
	defer cancel()
	runJob := runner.Run
	if *dryRun {
		runJob = runner.DryRun
	}
	res, err := runJob(jobCtx, job, report)
	if display != nil {
		display.finish()
	}
	if err != nil {
		return c.fail(err)
	}
	out, err := kalla.MarshalIndent(res)
	if err != nil {
		return c.fail(err)
	}
	_, err = c.Stdout.Write(out)
	return err
}

// fail prints err as one line on stderr and returns it for the exit code.
func (c *RunCommand) fail(err error) error {
	msg := strings.ReplaceAll(kalla.RedactText(err.Error()), "\n", " ")
	var se *kalla.StageError
	if errors.As(err, &se) && se.Stage != kalla.StageValidating {
		msg = string(se.Stage) + ": " + msg
	}
	if kalla.IsValidation(err) {
		msg = "invalid job: " + msg
	}
	fmt.Fprintln(c.Stderr, "kallad:", msg)
	return err
}

func readJob(path string) (*kalla.Job, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read job: %w", err)
		}
		defer f.Close()
		r = f
	}
	job, err := kalla.DecodeJob(r)
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", path, err)
	}
	return job, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newRunner wires the engine and the source and output adapters. The
// returned func releases the engine.
func newRunner(opts engineOptions, logger *slog.Logger) (*kalla.Runner, func(), error) {
	parts := opts.Partitions
	if parts <= 0 {
		parts = runtime.NumCPU()
	}
	engine, err := duckdb.Open(duckdb.Config{
		MemoryLimit:      opts.MemoryLimit,
		MaxSessions:      opts.Sessions,
		TempDir:          opts.TempDir,
		MaxTempSize:      opts.MaxTempSize,
		Threads:          parts,
		Logger:           logger,
		MinCSVSplitBytes: opts.Splits.CSVMinSplitBytes,
	})
	if err != nil {
		return nil, nil, err
	}
	pol, err := opts.Policy.build(logger)
	if err != nil {
		engine.Close()
		return nil, nil, err
	}
	sources, outputs, err := newRegistries(opts.TempDir, opts.Splits, pol, logger)
	if err != nil {
		engine.Close()
		return nil, nil, err
	}
	var once sync.Once
	return &kalla.Runner{
		Engine:        engine,
		Sources:       sources,
		Outputs:       outputs,
		CallbackHosts: pol.callbackHosts,
		Logger:        logger,
	}, func() { once.Do(func() { engine.Close() }) }, nil
}
