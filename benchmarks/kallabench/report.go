package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

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
			if !v.noCounts && v.Baseline == "" && run.Counts != r.Expected {
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
	r.summarizeReferences()
	if raw > 0 {
		for _, v := range r.Variants {
			if v.Best > 0 && v.Baseline == "" {
				v.VsRaw = v.Best / raw
			}
		}
	}
	r.floorRatios()
	r.summarizeRules()
}

// mismatchSummary tells a wrong engine (the variants disagree) from a wrong
// generator (they agree with each other, not with the design).
func (r *benchReport) mismatchSummary() string {
	if !r.designMismatch() {
		return "a variant's counts differ from its baseline's (see rules.go); see above"
	}
	var first *benchdata.Counts
	for _, v := range r.Variants {
		for i := range v.Runs {
			if v.noCounts || v.Baseline != "" {
				break
			}
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
	fmt.Fprintf(w, "kallabench: %d invoices x %d payments, memory limit %s, %d threads, %d run(s) each\n",
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
	fmt.Fprintln(tw, "variant        \tbest s\tmedian s\tcpu s\trows/s\tpeak RSS\tmatched\tunmatched_left\tunmatched_right\tvs raw DuckDB\tvs COPY floor\tvs reference\t")
	rows := float64(r.Invoices + r.Payments)
	for _, v := range r.Variants {
		switch {
		case v.Skipped != "":
			fmt.Fprintf(tw, "%-15s\tskipped\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", v.Name)
			continue
		case len(v.Runs) == 0:
			fmt.Fprintf(tw, "%-15s\tFAILED\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", v.Name)
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
		counts := fmt.Sprintf("%d\t%d\t%d", c.Matched, c.UnmatchedLeft, c.UnmatchedRight)
		if v.noCounts {
			counts = "-\t-\t-"
		}
		fmt.Fprintf(tw, "%-15s\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", v.Name, v.Best, v.Median, cpu,
			benchRate(rows/v.Best), rss, counts, benchRatio(v.VsRaw), benchRatio(v.VsFloor), v.referenceRatio())
	}
	e := r.Expected
	fmt.Fprintf(tw, "%-15s\t\t\t\t\t\t%d\t%d\t%d\t\t\t\t\n", "expected", e.Matched, e.UnmatchedLeft, e.UnmatchedRight)
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
	r.printRules(w)
	fmt.Fprintln(w, "\nvariants:")
	for _, v := range r.Variants {
		note := v.Note
		if v.Skipped != "" {
			note = "skipped (" + v.Skipped + "): " + note
		}
		fmt.Fprintf(w, "  %-15s %s\n", v.Name, note)
	}
	r.printExplainOverhead(w)
	if len(r.Mismatches) == 0 {
		fmt.Fprintln(w, "\ncounts: every variant that ran agrees with the generator's design, or with its baseline (rules)")
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
