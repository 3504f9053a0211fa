package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

// benchPhase is a named part of one run's time.
type benchPhase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// benchRun is one timed run of one variant.
type benchRun struct {
	Seconds float64 `json:"seconds"`
	// CPUSeconds is user plus system time of the child process: less
	// sensitive than Seconds to other work on the machine.
	CPUSeconds float64          `json:"cpu_seconds,omitempty"`
	PeakRSS    int64            `json:"peak_rss_bytes,omitempty"`
	Counts     benchdata.Counts `json:"counts"`
	Phases     []benchPhase     `json:"phases,omitempty"`
	// Rules are the per-rule counts of a rules variant (rules.go).
	Rules []kalla.RuleCount `json:"rules,omitempty"`
}

// benchChild runs the variants that need their own process, so that each
// one's peak RSS is its own (getrusage of a child is the honest high-water
// mark; the parent's would include data generation and earlier runs). The
// child is this program again, with a hidden first argument.
type benchChild struct {
	exe string
	eng engineOptions
	dir string
}

// writeJob writes a job file for Kalla over the two source URIs.
func (b *benchChild) writeJob(name, leftURI, rightURI string) (string, error) {
	job := benchdata.Job(leftURI, rightURI, filepath.Join(b.dir, "out", name))
	data, err := kalla.MarshalIndent(&job)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "job-"+name+".json")
	return path, os.WriteFile(path, data, 0o600)
}

// runKalla runs the job of jobPath end to end in a child process (as
// `kallad run` does) and returns its wall time, peak RSS, counts and phases.
func (b *benchChild) runKalla(ctx context.Context, jobPath string) (benchRun, error) {
	return b.runChild(ctx, kallaChildCommand, kallaSpec{Job: jobPath, Engine: b.eng})
}

// runChild runs this program with the hidden argument command and spec as
// JSON, and reads the benchRun the child prints. Its phases are the child's
// own; "other" is the rest of the wall time: start-up, validation, schema
// checks, summary and process exit.
func (b *benchChild) runChild(ctx context.Context, command string, spec any) (benchRun, error) {
	arg, err := json.Marshal(spec)
	if err != nil {
		return benchRun{}, err
	}
	cmd := exec.CommandContext(ctx, b.exe, command, string(arg))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var run benchRun
	start := time.Now()
	err = cmd.Run()
	run.Seconds = time.Since(start).Seconds()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			run.PeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
			run.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	if err != nil {
		return run, fmt.Errorf("%s: %w: %s", command, err, lastLine(errOut.Bytes()))
	}
	var child benchRun
	if err := json.Unmarshal(out.Bytes(), &child); err != nil {
		return run, fmt.Errorf("decode the result of %s: %w", command, err)
	}
	run.Counts, run.Phases, run.Rules = child.Counts, child.Phases, child.Rules
	if len(run.Phases) > 0 {
		sum := 0.0
		for _, p := range run.Phases {
			sum += p.Seconds
		}
		run.Phases = append(run.Phases, benchPhase{Name: "other", Seconds: max(run.Seconds-sum, 0)})
	}
	return run, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// rawChildCommand is the hidden first argument that makes kallabench run
// the raw DuckDB variant (rawBenchSpec as JSON in the next argument) and
// print a benchRun as JSON.
const rawChildCommand = "__raw-duckdb"

// rawBenchSpec is what the raw DuckDB child needs.
type rawBenchSpec struct {
	Invoices    string `json:"invoices"`
	Payments    string `json:"payments"`
	OutDir      string `json:"out_dir"`
	MemoryLimit string `json:"memory_limit"`
	TempDir     string `json:"temp_dir"`
	Threads     int    `json:"threads"`
	// Format is "csv" for CSV files (see rawReader), else Parquet.
	Format string `json:"format,omitempty"`
}

// runRaw runs the raw DuckDB variant in a child process.
func (b *benchChild) runRaw(ctx context.Context, d *benchdata.Set) (benchRun, error) {
	return b.runRawFiles(ctx, "raw-duckdb", "parquet", d.InvoicesParquet, d.PaymentsParquet)
}

// runRawFiles runs the raw DuckDB variant name on files of format in a
// child process.
func (b *benchChild) runRawFiles(ctx context.Context, name, format, invoices, payments string) (benchRun, error) {
	spec := rawBenchSpec{
		Invoices:    invoices,
		Payments:    payments,
		Format:      format,
		OutDir:      filepath.Join(b.dir, "out", name),
		MemoryLimit: b.eng.MemoryLimit,
		TempDir:     b.eng.TempDir,
		Threads:     b.eng.Partitions,
	}
	if spec.TempDir == "" {
		spec.TempDir = filepath.Join(b.dir, "raw-spill")
	}
	return b.runChild(ctx, rawChildCommand, spec)
}

// openRaw opens a fresh DuckDB with the settings Kalla's engine uses
// (memory limit, spill folder, threads, preserve_insertion_order = false),
// tolerance_match, and the two sources as views named like the job's
// aliases over the table expressions left and right, plus extra setup
// statements; done closes it.
func openRaw(ctx context.Context, spec rawBenchSpec, left, right string, extra ...string) (conn *sql.Conn, done func(), err error) {
	if err := os.MkdirAll(spec.OutDir, 0o755); err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, nil, err
	}
	if conn, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	done = func() { conn.Close(); db.Close() }
	setup := []string{
		"SET temp_directory = " + benchdata.Quote(spec.TempDir),
		"SET preserve_insertion_order = false",
		"CREATE MACRO tolerance_match(a, b, t) AS abs(a - b) <= t",
		"CREATE VIEW " + benchdata.LeftAlias + " AS SELECT * FROM " + left,
		"CREATE VIEW " + benchdata.RightAlias + " AS SELECT * FROM " + right,
	}
	if spec.Threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", spec.Threads))
	}
	if spec.MemoryLimit != "" {
		setup = append(setup, "SET memory_limit = "+benchdata.Quote(spec.MemoryLimit))
	}
	for _, s := range append(setup, extra...) {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			done()
			return nil, nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	return conn, done, nil
}

// rawDuckDB does by hand what a Kalla job does, on a fresh DuckDB with the
// settings Kalla's engine uses (memory limit, spill folder, threads,
// preserve_insertion_order = false), reading the Parquet files in place
// through views named like the job's aliases so the match SQL is the same
// text.
func rawDuckDB(ctx context.Context, spec rawBenchSpec) (benchRun, error) {
	var run benchRun
	conn, done, err := openRaw(ctx, spec, rawReader(spec.Format, spec.Invoices), rawReader(spec.Format, spec.Payments))
	if err != nil {
		return run, err
	}
	defer done()
	out := func(name string) string { return benchdata.Quote(filepath.Join(spec.OutDir, name)) }
	steps := []struct {
		name, sql string
		count     *int64
	}{
		{"join", "CREATE TABLE matched AS " + benchdata.MatchSQL, nil},
		{"write matched", "COPY matched TO " + out(kalla.MatchedFile) + " (FORMAT parquet)", &run.Counts.Matched},
		{"anti-join left", "COPY (SELECT i.* FROM " + benchdata.LeftAlias + " i ANTI JOIN matched m ON m.invoice_id = i.invoice_id) TO " +
			out(kalla.UnmatchedLeftFile) + " (FORMAT parquet)", &run.Counts.UnmatchedLeft},
		{"anti-join right", "COPY (SELECT p.* FROM " + benchdata.RightAlias + " p ANTI JOIN matched m ON m.payment_id = p.payment_id) TO " +
			out(kalla.UnmatchedRightFile) + " (FORMAT parquet)", &run.Counts.UnmatchedRight},
	}
	for _, st := range steps {
		start := time.Now()
		res, err := conn.ExecContext(ctx, st.sql)
		if err != nil {
			return run, fmt.Errorf("%s: %w", st.name, err)
		}
		if st.count != nil {
			if *st.count, err = res.RowsAffected(); err != nil {
				return run, err
			}
		}
		run.Phases = append(run.Phases, benchPhase{Name: st.name, Seconds: time.Since(start).Seconds()})
	}
	return run, nil
}

// runRawChild is the child side of runRaw.
func (c *benchCommand) runRawChild(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one JSON argument", rawChildCommand)
	}
	var spec rawBenchSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("decode raw DuckDB spec: %w", err)
	}
	run, err := rawDuckDB(ctx, spec)
	if err != nil {
		fmt.Fprintln(c.Stderr, "kallabench: raw DuckDB:", err)
		return err
	}
	return json.NewEncoder(c.Stdout).Encode(run)
}
