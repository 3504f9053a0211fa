package main

import (
	"bufio"
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
}

// benchChild runs the variants that need their own process, so that each
// one's peak RSS is its own (getrusage of a child is the honest high-water
// mark; the parent's would include data generation and earlier runs).
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

// runKalla runs `kallad run JOB` end to end in a child process and returns
// its wall time, peak RSS, counts, and the phases its info logs report.
func (b *benchChild) runKalla(ctx context.Context, jobPath string) (benchRun, error) {
	args := []string{"run", "--progress", "never", "--log-level", "info", "--log-format", "json"}
	args = append(args, b.engineArgs()...)
	args = append(args, jobPath)
	stdout, stderr, run, err := b.exec(ctx, args)
	if err != nil {
		return run, err
	}
	var res kalla.Result
	if err := json.Unmarshal(stdout, &res); err != nil {
		return run, fmt.Errorf("decode kallad run output: %w", err)
	}
	run.Counts = benchdata.ResultCounts(&res)
	run.Phases = kallaPhases(stderr, run.Seconds)
	return run, nil
}

func (b *benchChild) engineArgs() []string {
	var args []string
	if b.eng.MemoryLimit != "" {
		args = append(args, "--memory-limit", b.eng.MemoryLimit)
	}
	if b.eng.TempDir != "" {
		args = append(args, "--temp-dir", b.eng.TempDir)
	}
	if b.eng.Partitions > 0 {
		args = append(args, "--partitions", fmt.Sprint(b.eng.Partitions))
	}
	return args
}

// exec runs the kallad binary with args, timing it from start to exit.
func (b *benchChild) exec(ctx context.Context, args []string) (stdout, stderr []byte, run benchRun, err error) {
	cmd := exec.CommandContext(ctx, b.exe, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
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
		return nil, nil, run, fmt.Errorf("kallad %s: %w: %s", args[0], err, lastLine(errOut.Bytes()))
	}
	return out.Bytes(), errOut.Bytes(), run, nil
}

// kallaPhases reads the runner's "source staged" and "reconciled" log lines
// (slog JSON; durations in nanoseconds) into phases; "other" is start-up,
// validation, schema checks, summary and process exit.
func kallaPhases(logs []byte, total float64) []benchPhase {
	var phases []benchPhase
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var line struct {
			Msg     string  `json:"msg"`
			Alias   string  `json:"alias"`
			Elapsed float64 `json:"elapsed"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		var name string
		switch line.Msg {
		case "source staged":
			name = "stage " + line.Alias
		case "reconciled":
			name = "match+write"
		default:
			continue
		}
		s := line.Elapsed / 1e9
		sum += s
		phases = append(phases, benchPhase{Name: name, Seconds: s})
	}
	if len(phases) > 0 {
		phases = append(phases, benchPhase{Name: "other", Seconds: max(total-sum, 0)})
	}
	return phases
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// benchRawChildCommand is the hidden first argument of `kallad bench` that
// makes it run the raw DuckDB variant (rawBenchSpec as JSON in the next
// argument) and print a benchRun as JSON.
const benchRawChildCommand = "__raw-duckdb"

// rawBenchSpec is what the raw DuckDB child needs.
type rawBenchSpec struct {
	Invoices    string `json:"invoices"`
	Payments    string `json:"payments"`
	OutDir      string `json:"out_dir"`
	MemoryLimit string `json:"memory_limit"`
	TempDir     string `json:"temp_dir"`
	Threads     int    `json:"threads"`
}

// runRaw runs the raw DuckDB variant in a child process.
func (b *benchChild) runRaw(ctx context.Context, d *benchdata.Set) (benchRun, error) {
	spec := rawBenchSpec{
		Invoices:    d.InvoicesParquet,
		Payments:    d.PaymentsParquet,
		OutDir:      filepath.Join(b.dir, "out", "raw-duckdb"),
		MemoryLimit: b.eng.MemoryLimit,
		TempDir:     b.eng.TempDir,
		Threads:     b.eng.Partitions,
	}
	if spec.TempDir == "" {
		spec.TempDir = filepath.Join(b.dir, "raw-spill")
	}
	arg, err := json.Marshal(spec)
	if err != nil {
		return benchRun{}, err
	}
	stdout, _, run, err := b.exec(ctx, []string{"bench", benchRawChildCommand, string(arg)})
	if err != nil {
		return run, err
	}
	var child benchRun
	if err := json.Unmarshal(stdout, &child); err != nil {
		return run, fmt.Errorf("decode raw DuckDB result: %w", err)
	}
	run.Counts, run.Phases = child.Counts, child.Phases
	if len(run.Phases) > 0 {
		sum := 0.0
		for _, p := range run.Phases {
			sum += p.Seconds
		}
		run.Phases = append(run.Phases, benchPhase{Name: "other", Seconds: max(run.Seconds-sum, 0)})
	}
	return run, nil
}

// rawDuckDB does by hand what a Kalla job does, on a fresh DuckDB with the
// settings Kalla's engine uses (memory limit, spill folder, threads,
// preserve_insertion_order = false), reading the Parquet files in place
// through views named like the job's aliases so the match SQL is the same
// text.
func rawDuckDB(ctx context.Context, spec rawBenchSpec) (benchRun, error) {
	var run benchRun
	if err := os.MkdirAll(spec.OutDir, 0o755); err != nil {
		return run, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return run, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return run, err
	}
	defer conn.Close()
	setup := []string{
		"SET temp_directory = " + benchdata.Quote(spec.TempDir),
		"SET preserve_insertion_order = false",
		"CREATE MACRO tolerance_match(a, b, t) AS abs(a - b) <= t",
		"CREATE VIEW " + benchdata.LeftAlias + " AS SELECT * FROM read_parquet(" + benchdata.Quote(spec.Invoices) + ")",
		"CREATE VIEW " + benchdata.RightAlias + " AS SELECT * FROM read_parquet(" + benchdata.Quote(spec.Payments) + ")",
	}
	if spec.Threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", spec.Threads))
	}
	if spec.MemoryLimit != "" {
		setup = append(setup, "SET memory_limit = "+benchdata.Quote(spec.MemoryLimit))
	}
	for _, s := range setup {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return run, fmt.Errorf("%s: %w", s, err)
		}
	}
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
func (c *BenchCommand) runRawChild(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one JSON argument", benchRawChildCommand)
	}
	var spec rawBenchSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("decode raw DuckDB spec: %w", err)
	}
	run, err := rawDuckDB(ctx, spec)
	if err != nil {
		fmt.Fprintln(c.Stderr, "kallad bench: raw DuckDB:", err)
		return err
	}
	return json.NewEncoder(c.Stdout).Encode(run)
}
