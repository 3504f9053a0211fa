package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// BenchCommand measures Kalla against the same work done by hand:
// `kallad bench [flags]`. It generates invoices and payments, then times, in
// the same run and on the same data, Kalla from Parquet, raw DuckDB SQL on
// those Parquet files, Kalla from Postgres, and Postgres itself, and checks
// that all four report the same counts.
type BenchCommand struct {
	Stdout, Stderr io.Writer
}

// benchOptions are the flags of `kallad bench`.
type benchOptions struct {
	rows         int64
	postgres     string
	skipPostgres bool
	dir          string
	keep         bool
	runs         int
	json         bool
	eng          engineOptions
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

	run func(context.Context) (benchRun, error)
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

// Run parses args, generates the data and runs every variant --runs times.
// It fails if any variant fails or reports counts other than the generator's
// design says.
func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == benchRawChildCommand {
		return c.runRawChild(ctx, args[1:])
	}
	opts, err := c.parse(args)
	if err != nil {
		return err
	}
	err = c.run(ctx, opts)
	if err != nil && !errors.Is(err, errBenchReported) {
		fmt.Fprintln(c.Stderr, "kallad bench:", err)
	}
	return err
}

// errBenchReported is returned once the failure has been printed.
var errBenchReported = errors.New("benchmark failed")

func (c *BenchCommand) parse(args []string) (*benchOptions, error) {
	fs := flag.NewFlagSet("kallad bench", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	o := &benchOptions{}
	var logs logOptions
	if err := commonFlags(fs, &o.eng, &logs, "warn"); err != nil {
		return nil, err
	}
	fs.Int64Var(&o.rows, "rows", 1_000_000, "number of invoices (payments are about 0.95 times as many)")
	fs.StringVar(&o.postgres, "postgres", env("", "KALLA_BENCH_POSTGRES"), "Postgres URL to seed and read, postgres://user:pass@host:port/db (env KALLA_BENCH_POSTGRES); without it the Postgres variants are skipped")
	fs.BoolVar(&o.skipPostgres, "skip-postgres", false, "skip the Postgres variants even if --postgres is set")
	fs.StringVar(&o.dir, "dir", "", "work folder for data, jobs and outputs; kept, and its data reused by later runs with the same --rows (default a temp folder, removed)")
	fs.BoolVar(&o.keep, "keep", false, "keep the default temp work folder")
	fs.IntVar(&o.runs, "runs", 1, "run every variant this many times and report the best and the median")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "Usage: kallad bench [flags]\n\nTimes Kalla from Parquet and from Postgres against raw DuckDB SQL and Postgres doing the same job.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	operands, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(operands) != 0 {
		fs.Usage()
		return nil, errUsage
	}
	if o.runs < 1 {
		return nil, fmt.Errorf("--runs %d: must be at least 1", o.runs)
	}
	return o, nil
}

func (c *BenchCommand) logf(format string, args ...any) {
	fmt.Fprintf(c.Stderr, "kallad bench: "+format+"\n", args...)
}

func (c *BenchCommand) run(ctx context.Context, o *benchOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
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
		{Name: "kalla-parquet", Note: "kallad run, Parquet files, end to end, 3 Parquet outputs",
			run: func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, parquetJob) }},
		{Name: "raw-duckdb", Note: "hand-written DuckDB SQL on the same files: join, 2 anti-joins, 3 Parquet outputs",
			run: func(ctx context.Context) (benchRun, error) { return child.runRaw(ctx, data) }},
		{Name: "kalla-postgres", Note: "kallad run, Postgres tables, end to end, 3 Parquet outputs"},
		{Name: "postgres", Note: "Postgres SQL: CREATE TEMP TABLE AS join, 2 anti-join counts, no outputs"},
	}
	switch {
	case o.skipPostgres:
		variants[2].Skipped, variants[3].Skipped = "--skip-postgres", "--skip-postgres"
	case o.postgres == "":
		variants[2].Skipped, variants[3].Skipped = "no --postgres", "no --postgres"
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
	}

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
			c.logf("run %d/%d %-15s %6.2fs  %s", round, o.runs, v.Name, r.Seconds, r.Counts)
		}
	}

	threads := o.eng.Partitions
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
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

// summarize computes best, median, peak RSS and ratios, and lists every run
// whose counts differ from the design's.
func (r *benchReport) summarize() {
	var raw float64
	for _, v := range r.Variants {
		if len(v.Runs) == 0 {
			continue
		}
		secs := make([]float64, len(v.Runs))
		for i, run := range v.Runs {
			secs[i] = run.Seconds
			v.PeakRSS = max(v.PeakRSS, run.PeakRSS)
			if run.Counts != r.Expected {
				r.Mismatches = append(r.Mismatches, fmt.Sprintf("%s run %d: %s, expected %s", v.Name, i+1, run.Counts, r.Expected))
			}
		}
		slices.Sort(secs)
		v.Best = secs[0]
		if n := len(secs); n%2 == 1 {
			v.Median = secs[n/2]
		} else {
			v.Median = (secs[n/2-1] + secs[n/2]) / 2
		}
		if v.Name == "raw-duckdb" {
			raw = v.Best
		}
	}
	if raw > 0 {
		for _, v := range r.Variants {
			if v.Best > 0 {
				v.VsRaw = v.Best / raw
			}
		}
	}
}

// mismatchSummary tells a wrong engine (the variants disagree) from a wrong
// generator (they agree with each other, not with the design).
func (r *benchReport) mismatchSummary() string {
	var first *benchdata.Counts
	for _, v := range r.Variants {
		for i := range v.Runs {
			if first == nil {
				first = &v.Runs[i].Counts
			} else if v.Runs[i].Counts != *first {
				return "the variants do not agree on the counts; see above"
			}
		}
	}
	return "every variant reports the same counts, but not the generator's design: check the generator"
}

// bestRun is the fastest run of v.
func (v *benchVariant) bestRun() *benchRun {
	var best *benchRun
	for i := range v.Runs {
		if best == nil || v.Runs[i].Seconds < best.Seconds {
			best = &v.Runs[i]
		}
	}
	return best
}

func (r *benchReport) printTable(w io.Writer) {
	mem := r.MemoryLimit
	if mem == "" {
		mem = "DuckDB default (80% of RAM)"
	}
	fmt.Fprintf(w, "kallad bench: %d invoices x %d payments, memory limit %s, %d threads, %d run(s) each\n",
		r.Invoices, r.Payments, mem, r.Threads, r.Runs)
	if r.LoadBefore != "" {
		note := ""
		for _, l := range []string{r.LoadBefore, r.LoadAfter} {
			if x, err := strconv.ParseFloat(l, 64); err == nil && x > float64(runtime.NumCPU())+0.5 {
				note = fmt.Sprintf(" (more than %d CPUs: other work shared the machine, times are inflated)", runtime.NumCPU())
			}
		}
		fmt.Fprintf(w, "load average: %s before, %s after%s\n", r.LoadBefore, r.LoadAfter, note)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Names are padded here so that they stay left-aligned while the
	// numbers align right.
	fmt.Fprintln(tw, "variant        \tbest s\tmedian s\tcpu s\trows/s\tpeak RSS\tmatched\tunmatched_left\tunmatched_right\tvs raw DuckDB\t")
	rows := float64(r.Invoices + r.Payments)
	for _, v := range r.Variants {
		switch {
		case v.Skipped != "":
			fmt.Fprintf(tw, "%-15s\tskipped\t-\t-\t-\t-\t-\t-\t-\t-\t\n", v.Name)
			continue
		case len(v.Runs) == 0:
			fmt.Fprintf(tw, "%-15s\tFAILED\t-\t-\t-\t-\t-\t-\t-\t-\t\n", v.Name)
			continue
		}
		best := v.bestRun()
		c := best.Counts
		rss, cpu := "-", "-"
		if v.PeakRSS > 0 {
			rss = benchBytes(v.PeakRSS)
		}
		if best.CPUSeconds > 0 {
			cpu = fmt.Sprintf("%.2f", best.CPUSeconds)
		}
		fmt.Fprintf(tw, "%-15s\t%.2f\t%.2f\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t\n", v.Name, v.Best, v.Median, cpu,
			benchRate(rows/v.Best), rss, c.Matched, c.UnmatchedLeft, c.UnmatchedRight, benchRatio(v.VsRaw))
	}
	e := r.Expected
	fmt.Fprintf(tw, "%-15s\t\t\t\t\t\t%d\t%d\t%d\t\t\n", "expected", e.Matched, e.UnmatchedLeft, e.UnmatchedRight)
	tw.Flush()

	fmt.Fprintf(w, "\nwhere the time goes (best run; seconds):\n")
	for _, v := range r.Variants {
		best := v.bestRun()
		if best == nil || len(best.Phases) == 0 {
			continue
		}
		parts := make([]string, len(best.Phases))
		for i, p := range best.Phases {
			parts[i] = fmt.Sprintf("%s %.2f", p.Name, p.Seconds)
		}
		fmt.Fprintf(w, "  %-15s %s\n", v.Name, strings.Join(parts, " | "))
	}
	fmt.Fprintln(w, "\nvariants:")
	for _, v := range r.Variants {
		note := v.Note
		if v.Skipped != "" {
			note = "skipped (" + v.Skipped + "): " + note
		}
		fmt.Fprintf(w, "  %-15s %s\n", v.Name, note)
	}
	if len(r.Mismatches) == 0 {
		fmt.Fprintln(w, "\ncounts: every variant that ran agrees with the generator's design")
	} else {
		fmt.Fprintln(w, "\nMISMATCH: the counts differ; see stderr")
	}
}

func benchRatio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

func benchRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	default:
		return fmt.Sprintf("%.0f", x)
	}
}

func benchBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// benchLoadAvg returns the 1-minute load average, or "" where /proc has none.
func benchLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}
