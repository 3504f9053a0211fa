// Command kallabench measures Kalla against the same work done by hand. It
// generates invoices and payments (internal/benchdata), then times, in the
// same run and on the same data, Kalla from Parquet, raw DuckDB SQL on those
// Parquet files, Kalla from Postgres, and Postgres itself, and checks that all
// four report the same counts. Each variant runs in a child process, so that
// its peak RSS is its own; Kalla's phases are the stage durations its Runner
// reports (kalla.Runner.StageDone).
//
//	go run ./benchmarks/kallabench --rows 5000000 --memory-limit 1GB --postgres postgres://…
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// engineOptions are the engine flags that `kallad run` takes too.
type engineOptions struct {
	MemoryLimit string `json:"memory_limit,omitempty"`
	TempDir     string `json:"temp_dir,omitempty"`
	MaxTempSize string `json:"max_temp_size,omitempty"`
	Partitions  int    `json:"partitions,omitempty"`
	LogLevel    string `json:"log_level,omitempty"`
	LogFormat   string `json:"log_format,omitempty"`
}

// benchOptions are the flags of kallabench.
type benchOptions struct {
	rows         int64
	postgres     string
	skipPostgres bool
	skipRules    bool
	dir          string
	keep         bool
	runs         int
	json         bool
	eng          engineOptions
	csv          csvOptions
}

// benchVariant is one way of doing the job, and its measurements.
type benchVariant struct {
	Name    string     `json:"name"`
	Note    string     `json:"note"`
	Runs    []benchRun `json:"runs,omitempty"`
	Error   string     `json:"error,omitempty"`
	Skipped string     `json:"skipped,omitempty"`
	Best    float64    `json:"best_seconds,omitempty"`
	Median  float64    `json:"median_seconds,omitempty"`
	// PeakRSS is the largest peak RSS over the runs; 0 when not measured.
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// VsRaw is Best over raw DuckDB's Best.
	VsRaw float64 `json:"ratio_vs_raw_duckdb,omitempty"`
	// VsFloor is Best over the COPY floor's Best, for Postgres variants.
	VsFloor float64 `json:"ratio_vs_copy_floor,omitempty"`
	// noCounts marks a variant that reads without matching: it has no
	// counts to check.
	noCounts bool
	// Reference names the variant VsRef compares with; VsRef is Best over
	// its Best.
	Reference string  `json:"reference,omitempty"`
	VsRef     float64 `json:"ratio_vs_reference,omitempty"`
	// Baseline, when set, names the variant whose counts this one's must
	// equal (and whose time VsRaw divides by) instead of the generator's
	// design and raw-duckdb's: see rules.go.
	Baseline string `json:"baseline,omitempty"`

	run     func(context.Context) (benchRun, error)
	compare func(run, base benchRun) []string
}

// benchReport is the --json output.
type benchReport struct {
	Invoices    int64            `json:"invoices"`
	Payments    int64            `json:"payments"`
	MemoryLimit string           `json:"memory_limit,omitempty"`
	Threads     int              `json:"threads"`
	Runs        int              `json:"runs"`
	Expected    benchdata.Counts `json:"expected"`
	Variants    []*benchVariant  `json:"variants"`
	Mismatches  []string         `json:"mismatches,omitempty"`
	// LoadBefore and LoadAfter are /proc/loadavg when the timed runs began
	// and ended: timings taken while other work shares the CPUs are slow.
	LoadBefore string `json:"loadavg_before,omitempty"`
	LoadAfter  string `json:"loadavg_after,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &benchCommand{Stdout: os.Stdout, Stderr: os.Stderr}
	err := c.Run(ctx, os.Args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		os.Exit(1)
	}
}

// benchCommand runs the benchmark, or one of its child variants when its
// first argument names one.
type benchCommand struct {
	Stdout, Stderr io.Writer
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// Run parses args, generates the data and runs every variant --runs times.
// It fails if any variant fails or reports counts other than the generator's
// design says.
func (c *benchCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case rawChildCommand:
			return c.runRawChild(ctx, args[1:])
		case kallaChildCommand:
			return c.runKallaChild(ctx, args[1:])
		case rawRulesChildCommand:
			return c.runRawRulesChild(ctx, args[1:])
		}
	}
	opts, err := c.parse(args)
	if err != nil {
		return err
	}
	err = c.run(ctx, opts)
	if err != nil && !errors.Is(err, errBenchReported) {
		fmt.Fprintln(c.Stderr, "kallabench:", err)
	}
	return err
}

// errBenchReported is returned once the failure has been printed.
var errBenchReported = errors.New("benchmark failed")

func (c *benchCommand) parse(args []string) (*benchOptions, error) {
	fs := flag.NewFlagSet("kallabench", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	o := &benchOptions{}
	parts := 0
	if v := env("", "KALLA_PARTITIONS", "BALLISTA_PARTITIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("KALLA_PARTITIONS %q: not a whole number", v)
		}
		parts = n
	}
	// The engine and log flags of `kallad run`, with the same env names.
	fs.StringVar(&o.eng.MemoryLimit, "memory-limit", env("", "KALLA_MEMORY_LIMIT"), "DuckDB memory limit, e.g. 4GB or 75% (env KALLA_MEMORY_LIMIT; default DuckDB's 80% of RAM)")
	fs.StringVar(&o.eng.TempDir, "temp-dir", env("", "KALLA_TEMP_DIR"), "local folder DuckDB spills to beyond the memory limit (env KALLA_TEMP_DIR; default the system temp dir)")
	fs.StringVar(&o.eng.MaxTempSize, "max-temp-size", env("", "KALLA_MAX_TEMP_SIZE"), "most DuckDB may spill to --temp-dir, e.g. 20GB (env KALLA_MAX_TEMP_SIZE)")
	fs.IntVar(&o.eng.Partitions, "partitions", parts, "parallel streams and DuckDB threads (env KALLA_PARTITIONS; default the number of CPUs)")
	fs.StringVar(&o.eng.LogLevel, "log-level", env("warn", "KALLA_LOG_LEVEL"), "log level of the Kalla runs: debug, info, warn, error (env KALLA_LOG_LEVEL)")
	fs.StringVar(&o.eng.LogFormat, "log-format", env("text", "KALLA_LOG_FORMAT"), "log format of the Kalla runs: text or json (env KALLA_LOG_FORMAT)")
	fs.Int64Var(&o.rows, "rows", 1_000_000, "number of invoices (payments are about 0.95 times as many)")
	fs.StringVar(&o.postgres, "postgres", env("", "KALLA_BENCH_POSTGRES"), "Postgres URL to seed and read, postgres://user:pass@host:port/db (env KALLA_BENCH_POSTGRES); without it the Postgres variants are skipped")
	fs.BoolVar(&o.skipPostgres, "skip-postgres", false, "skip the Postgres variants even if --postgres is set")
	fs.BoolVar(&o.skipRules, "skip-rules", false, "skip the rules variants (issue 13's three rules, Kalla against the same rules in raw DuckDB SQL)")
	fs.StringVar(&o.dir, "dir", "", "work folder for data, jobs and outputs; kept, and its data reused by later runs with the same --rows (default a temp folder, removed)")
	fs.BoolVar(&o.keep, "keep", false, "keep the default temp work folder")
	fs.IntVar(&o.runs, "runs", 1, "run every variant this many times and report the best and the median")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	o.csv.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "Usage: go run ./benchmarks/kallabench [flags]\n\nTimes Kalla from Parquet and from Postgres against raw DuckDB SQL and Postgres doing the same job.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return nil, errUsage
	}
	if o.runs < 1 {
		return nil, fmt.Errorf("--runs %d: must be at least 1", o.runs)
	}
	if _, err := parseLevel(o.eng.LogLevel); err != nil {
		return nil, err
	}
	if o.eng.LogFormat != "text" && o.eng.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: must be text or json", o.eng.LogFormat)
	}
	return o, nil
}

// env returns the first of the named environment variables that is set, or
// def.
func env(def string, names ...string) string {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return v
		}
	}
	return def
}

func (c *benchCommand) logf(format string, args ...any) {
	fmt.Fprintf(c.Stderr, "kallabench: "+format+"\n", args...)
}

func (c *benchCommand) run(ctx context.Context, o *benchOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if o.eng.Partitions <= 0 {
		o.eng.Partitions = runtime.NumCPU()
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kalla-bench-"); err != nil {
			return err
		}
		if o.keep {
			c.logf("work folder %s (kept)", dir)
		} else {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}

	data, err := benchdata.Generate(ctx, dir, o.rows, c.logf)
	if err != nil {
		return err
	}
	child := &benchChild{exe: exe, eng: o.eng, dir: dir}
	parquetJob, err := child.writeJob("kalla-parquet", data.InvoicesParquet, data.PaymentsParquet)
	if err != nil {
		return err
	}
	variants := []*benchVariant{
		{Name: "kalla-parquet", Note: "the Runner as kallad run wires it, Parquet files, end to end, 3 Parquet outputs",
			run: func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, parquetJob) }},
		{Name: "raw-duckdb", Note: "hand-written DuckDB SQL on the same files: join, 2 anti-joins, 3 Parquet outputs",
			run: func(ctx context.Context) (benchRun, error) { return child.runRaw(ctx, data) }},
		{Name: "kalla-postgres", Note: "the Runner as kallad run wires it, Postgres tables, end to end, 3 Parquet outputs"},
		{Name: "postgres", Note: "Postgres SQL: CREATE TEMP TABLE AS join, 2 anti-join counts, no outputs"},
		{Name: copyFloorVariant, Note: copyFloorNote, noCounts: true},
		{Name: pruneFloorVariant, Note: pruneFloorNote, noCounts: true},
	}
	csvVars, stopCSV, err := c.csvVariants(ctx, o, data, child)
	if err != nil {
		return err
	}
	defer stopCSV()
	variants = append(variants, csvVars...)
	carried, err := c.carryVariants(ctx, child, data)
	if err != nil {
		return err
	}
	variants = append(variants, carried...)
	switch {
	case o.skipPostgres:
		for _, v := range variants[2:6] {
			v.Skipped = "--skip-postgres"
		}
	case o.postgres == "":
		for _, v := range variants[2:6] {
			v.Skipped = "no --postgres"
		}
	default:
		pg, err := benchdata.SeedPostgres(ctx, o.postgres, data, c.logf)
		if err != nil {
			return err
		}
		left, err := pg.SourceURI(benchdata.InvoicesTable)
		if err != nil {
			return err
		}
		right, err := pg.SourceURI(benchdata.PaymentsTable)
		if err != nil {
			return err
		}
		pgJob, err := child.writeJob("kalla-postgres", left, right)
		if err != nil {
			return err
		}
		variants[2].run = func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, pgJob) }
		variants[3].run = func(ctx context.Context) (benchRun, error) { return runPostgresNative(ctx, pg) }
		variants[4].run = func(ctx context.Context) (benchRun, error) { return runCopyFloor(ctx, pg, data) }
		variants[5].run = func(ctx context.Context) (benchRun, error) { return runPruneFloor(ctx, pg, data) }
	}

	if !o.skipRules {
		rules, err := rulesVariants(child, data)
		if err != nil {
			return err
		}
		variants = append(variants, rules...)
	}

	explained, err := explainVariants(child, data)
	if err != nil {
		return err
	}
	variants = append(variants, explained...)

	loadBefore := benchLoadAvg()
	// Rounds interleave the variants, so that a slow spell of the machine
	// does not land on one variant only.
	for round := 1; round <= o.runs; round++ {
		for _, v := range variants {
			if v.run == nil || v.Error != "" || v.Skipped != "" {
				continue
			}
			r, err := v.run(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				v.Error = err.Error()
				c.logf("%s failed: %v", v.Name, err)
				continue
			}
			v.Runs = append(v.Runs, r)
			counts := r.Counts.String()
			if v.noCounts {
				counts = "(reads only, no match)"
			}
			c.logf("run %d/%d %-15s %6.2fs  %s", round, o.runs, v.Name, r.Seconds, counts)
		}
	}

	threads := o.eng.Partitions
	rep := &benchReport{
		Invoices: data.Invoices, Payments: data.Payments, MemoryLimit: o.eng.MemoryLimit,
		Threads: threads, Runs: o.runs, Expected: data.Expected, Variants: variants,
		LoadBefore: loadBefore, LoadAfter: benchLoadAvg(),
	}
	rep.summarize()
	if o.json {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.printTable(c.Stdout)
	}

	failed := false
	for _, m := range rep.Mismatches {
		fmt.Fprintln(c.Stderr, "MISMATCH:", m)
		failed = true
	}
	for _, v := range variants {
		if v.Error != "" {
			fmt.Fprintf(c.Stderr, "FAILED: %s: %s\n", v.Name, v.Error)
			failed = true
		}
	}
	if failed {
		if len(rep.Mismatches) > 0 {
			fmt.Fprintln(c.Stderr, "MISMATCH:", rep.mismatchSummary())
		}
		return errBenchReported
	}
	return nil
}
