// Command clusterbench measures cluster mode against local mode on one
// machine: the same 1:1-with-tolerance reconciliation of generated invoices
// and payments (the data of kallabench, from internal/benchdata, as
// Parquet or CSV files or Postgres tables) run by `kallad run`, by a
// scheduler with no executor (it runs the job itself), and by a scheduler
// with 1 and 2 `kallad executor` processes. It prints, per size, the
// seconds, the ratio to `kallad run`, the shuffle volume (staged source
// partitions, and partial results for the merge) and the cluster
// phases side by side, and fails when any mode's counts differ from local
// mode's or from the generator's design.
//
//	go run ./benchmarks/clusterbench --rows 1000000,5000000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kalla-dev/kalla/benchmarks/internal/kalladproc"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

type options struct {
	rows       []int64
	executors  []int
	partitions int
	dir        string
	kallad     string
	keep       bool
	repeat     int
	format     string
	pgURL      string
}

// measurement is one mode's run of one size.
type measurement struct {
	mode    string
	seconds float64
	counts  benchdata.Counts
	shuffle int64 // staged source partitions
	partial int64 // partial results, for the merge
	phases  map[string]float64
	err     error
}

func main() {
	o, err := parse(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "clusterbench: "+format+"\n", args...) }
	if err := run(ctx, o, os.Stdout, logf); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("clusterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.String("rows", "1000000,5000000", "invoice counts to run, comma separated")
	execs := fs.String("executors", "0,1,2", "executor counts of the cluster runs, comma separated")
	o := &options{}
	fs.IntVar(&o.partitions, "partitions", runtime.NumCPU(), "match tasks per job (the scheduler's --partitions); every process uses all cores")
	fs.StringVar(&o.dir, "dir", filepath.Join(os.TempDir(), "kalla-clusterbench"), "folder for the generated data (reused across runs) and the runs")
	fs.StringVar(&o.kallad, "kallad", "", "kallad binary to use (default: build ./cmd/kallad)")
	fs.BoolVar(&o.keep, "keep", false, "keep the runs' outputs and logs")
	fs.StringVar(&o.format, "format", "parquet", "sources: parquet files (read in place by the match tasks), csv files (staged, in byte-range splits) or postgres tables (staged, in ctid-range splits; needs --pg-url)")
	fs.StringVar(&o.pgURL, "pg-url", "", "Postgres for --format postgres: the data are seeded into bench_invoices and bench_payments of its current schema, as kallabench does")
	fs.IntVar(&o.repeat, "repeat", 1, "runs of each mode; the fastest is shown (the machine may be shared)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, f := range strings.Split(*rows, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n < 100 {
			return nil, fmt.Errorf("--rows: %q is not a count of at least 100", f)
		}
		o.rows = append(o.rows, n)
	}
	for _, f := range strings.Split(*execs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--executors: %q is not a count", f)
		}
		o.executors = append(o.executors, n)
	}
	switch {
	case o.format != "parquet" && o.format != "csv" && o.format != "postgres":
		return nil, fmt.Errorf("--format: %q is not parquet, csv or postgres", o.format)
	case o.format == "postgres" && o.pgURL == "":
		return nil, fmt.Errorf("--format postgres needs --pg-url")
	}
	if o.partitions < 1 {
		return nil, fmt.Errorf("--partitions must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, o *options, out io.Writer, logf func(string, ...any)) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	bin := o.kallad
	if bin == "" {
		logf("building kallad")
		var err error
		if bin, err = kalladproc.Build(ctx, o.dir); err != nil {
			return err
		}
	}
	failed := false
	for _, n := range o.rows {
		data, err := benchdata.Generate(ctx, filepath.Join(o.dir, fmt.Sprintf("data-%d", n)), n, logf)
		if err != nil {
			return err
		}
		in, err := sources(ctx, o, data, logf)
		if err != nil {
			return err
		}
		runs := filepath.Join(o.dir, fmt.Sprintf("runs-%d", n))
		if err := os.RemoveAll(runs); err != nil {
			return err
		}
		ms := make([]measurement, 1+len(o.executors))
		for r := range max(o.repeat, 1) {
			logf("%d invoices, %d payments (run %d): kallad run", n, data.Payments, r+1)
			ms[0] = fastest(ms[0], runLocal(ctx, bin, filepath.Join(runs, fmt.Sprintf("local-%d", r)), in, o.partitions))
			for i, e := range o.executors {
				logf("%d invoices (run %d): scheduler with %d executors", n, r+1, e)
				ms[i+1] = fastest(ms[i+1], runCluster(ctx, bin, filepath.Join(runs, fmt.Sprintf("cluster-%d-%d", e, r)), in, o.partitions, e))
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		if !printTable(out, n, o.format, data, o.partitions, ms) {
			failed = true
		}
		if !o.keep {
			_ = os.RemoveAll(runs)
		}
	}
	if failed {
		return errors.New("some runs failed, or disagree with local mode or the generator's design")
	}
	return nil
}

// printTable prints one size's measurements and reports whether every run
// succeeded with local mode's counts and the generator's expected ones.
func printTable(out io.Writer, n int64, format string, d *benchdata.Set, parts int, ms []measurement) bool {
	fmt.Fprintf(out, "\n%d invoices × %d payments (%s, 1:1 with tolerance), P = %d, %d CPUs\n", n, d.Payments, format, parts, runtime.NumCPU())
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "mode\tseconds\tvs local\tshuffle MB\tpartials MB\tplan\tstage\tmatch\tmerge\tmatched\tunmatched L\tunmatched R\t")
	ok := true
	var failures []string
	local := ms[0]
	for _, m := range ms {
		if m.err != nil {
			failures = append(failures, fmt.Sprintf("%s failed: %v", m.mode, m.err))
			continue
		}
		agree := ""
		switch {
		case local.err == nil && m.counts != local.counts:
			agree, ok = "  DIFFERS FROM LOCAL", false
		case m.counts != d.Expected:
			agree, ok = "  DIFFERS FROM EXPECTED", false
		}
		ratio, shuffle, partial := "", "-", "-"
		if local.err == nil && local.seconds > 0 {
			ratio = fmt.Sprintf("%.2fx", m.seconds/local.seconds)
		}
		if m.shuffle > 0 {
			shuffle = fmt.Sprintf("%.1f", float64(m.shuffle)/1e6)
		}
		if m.partial > 0 {
			partial = fmt.Sprintf("%.1f", float64(m.partial)/1e6)
		}
		phase := func(k string) string {
			if v, ok := m.phases[k]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return "-"
		}
		fmt.Fprintf(w, "%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d%s\t\n", m.mode, m.seconds, ratio, shuffle, partial,
			phase("plan"), phase("stage"), phase("match"), phase("merge"), m.counts.Matched, m.counts.UnmatchedLeft, m.counts.UnmatchedRight, agree)
	}
	e := d.Expected
	fmt.Fprintf(w, "expected\t\t\t\t\t\t\t\t\t%d\t%d\t%d\t\n", e.Matched, e.UnmatchedLeft, e.UnmatchedRight)
	w.Flush()
	for _, f := range failures {
		fmt.Fprintln(out, f)
	}
	return ok && len(failures) == 0
}

// fastest keeps the faster of two runs of a mode; a failure is kept.
func fastest(a, b measurement) measurement {
	switch {
	case a.mode == "", b.err != nil:
		return b
	case a.err != nil || b.seconds >= a.seconds:
		return a
	}
	return b
}

// elapsed times f.
func elapsed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}
