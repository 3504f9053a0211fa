// Command schedbench is the seeds' scheduler benchmark, ported: it seeds
// Postgres with invoices and payments in four reconciliation patterns
// (one-to-one with tolerance, split 1:N, batch M:1, cross M:N), builds and
// starts `kallad scheduler`, POSTs one job per pattern over HTTP, waits for
// the completion callback, and prints the elapsed time, rows/s and counts
// beside Postgres' own counts and time for the same match_sql. Counts that
// differ are flagged MISMATCH and make it exit 1.
//
//	go run ./benchmarks/schedbench --rows 1000000
//
// See docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/benchmarks/internal/kalladproc"
)

// options are the command's flags.
type options struct {
	rows          int64
	pgURL         string
	patterns      []*pattern
	json          bool
	kallad        string   // a prebuilt binary; empty builds ./cmd/kallad
	schedulerArgs []string // passed on to `kallad scheduler`
	reseed        bool
	keep          bool
	timeout       time.Duration
}

// kallaRun is what Kalla reported for one pattern, and how long it took.
type kallaRun struct {
	// Seconds runs from the POST to the arrival of the complete callback.
	Seconds float64 `json:"seconds"`
	// SubmitMS is the POST's round trip: validation and the bind check
	// against the sources' columns, storing and queueing.
	SubmitMS   float64 `json:"submit_ms"`
	RowsPerSec float64 `json:"rows_per_sec"` // (left + right) / Seconds
	// ElapsedMS is the payload's own elapsed_ms (the job, without the
	// HTTP round trips and queueing).
	ElapsedMS  int64   `json:"elapsed_ms"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"` // the scheduler process's user+system time
	PeakRSS    int64   `json:"peak_rss_bytes,omitempty"`
	Progress   int     `json:"progress_callbacks"`
	Finals     int     `json:"final_callbacks"`
	Counts     counts  `json:"counts"`
}

// postgresResult is what Postgres reported for the same match_sql.
type postgresResult struct {
	Seconds float64 `json:"seconds"`
	Counts  counts  `json:"counts"`
}

// patternReport is one row pair of the table.
type patternReport struct {
	Pattern  string          `json:"pattern"`
	Note     string          `json:"note"`
	RunID    string          `json:"run_id"`
	Invoices int64           `json:"invoices"`
	Payments int64           `json:"payments"`
	LoadAvg  string          `json:"loadavg"` // /proc/loadavg when the job was submitted
	Kalla    *kallaRun       `json:"kalla,omitempty"`
	Postgres *postgresResult `json:"postgres,omitempty"`
	Status   string          `json:"status"` // ok, MISMATCH or error
	Error    string          `json:"error,omitempty"`
}

// report is the --json output.
type report struct {
	Rows       int64            `json:"rows"`
	Kallad     string           `json:"kallad_version"`
	CPUs       string           `json:"cpus"`
	LoadBefore string           `json:"loadavg_before"`
	LoadAfter  string           `json:"loadavg_after"`
	Patterns   []*patternReport `json:"patterns"`
	Failed     bool             `json:"failed"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	o, err := parse(os.Args[1:], os.Stderr)
	if err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "schedbench: "+format+"\n", args...) }
	rep, err := run(ctx, o, logf)
	stop()
	if rep != nil {
		if o.json {
			printTable(os.Stderr, rep)
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			printTable(os.Stdout, rep)
		}
	}
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	if rep.Failed {
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("schedbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var names, schedArgs string
	fs.Int64Var(&o.rows, "rows", 100_000, "invoices per pattern (payments follow the pattern: about as many, 3x for split, 1/3 for batch)")
	fs.StringVar(&o.pgURL, "pg-url", os.Getenv("KALLA_BENCH_POSTGRES"), "Postgres to seed and read, postgres://user:pass@host:port/db (env KALLA_BENCH_POSTGRES); the role must create schemas. Default: a throwaway server from /usr/lib/postgresql/*/bin")
	fs.StringVar(&names, "patterns", "one_to_one,split,batch,cross", "comma-separated patterns to run")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON on stdout (the table goes to stderr)")
	fs.StringVar(&o.kallad, "kallad", "", "kallad binary to run (default: go build ./cmd/kallad into a temp folder)")
	fs.StringVar(&schedArgs, "scheduler-args", "", "extra flags for kallad scheduler, space-separated, e.g. \"--partitions 2 --memory-limit 4GB\"")
	fs.BoolVar(&o.reseed, "reseed", false, "seed again even if a --pg-url already holds this data")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp folder (binary, scheduler data and log, outputs)")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "give up on a job after this long")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./benchmarks/schedbench [flags]\n\nSeeds Postgres, runs one kallad scheduler job per pattern over HTTP and compares its counts with Postgres'.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 || o.rows < 1 {
		fs.Usage()
		return nil, errors.New("usage")
	}
	for _, n := range strings.Split(names, ",") {
		p := patternByName(strings.TrimSpace(n))
		if p == nil {
			fmt.Fprintf(stderr, "schedbench: unknown pattern %q (one_to_one, split, batch, cross)\n", n)
			return nil, errors.New("usage")
		}
		o.patterns = append(o.patterns, p)
	}
	o.schedulerArgs = strings.Fields(schedArgs)
	return o, nil
}

// run does the whole benchmark. The report is returned, with the error,
// as far as it got.
func run(ctx context.Context, o *options, logf func(string, ...any)) (rep *report, err error) {
	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// The build (tens of seconds the first time) overlaps the seeding.
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	go func() {
		if o.kallad != "" {
			build <- built{o.kallad, nil}
			return
		}
		start := time.Now()
		bin, err := kalladproc.Build(ctx, dir)
		if err == nil {
			logf("built kallad in %.1fs", time.Since(start).Seconds())
		}
		build <- built{bin, err}
	}()
	defer func() {
		if b := <-build; b.err != nil && err == nil {
			err = b.err
		}
	}()

	pgURL := o.pgURL
	if pgURL == "" {
		srv, u, err := startPostgres(ctx, logf)
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		pgURL = u
	}
	rep = &report{Rows: o.rows, CPUs: cpuInfo()}
	for _, p := range o.patterns {
		n, err := seedPattern(ctx, pgURL, p, patternIndex(p), o.rows, o.reseed, logf)
		if err != nil {
			return nil, err
		}
		rep.Patterns = append(rep.Patterns, &patternReport{Pattern: p.name, Note: p.note, Invoices: n[0], Payments: n[1]})
	}

	b := <-build
	build <- b // for the deferred check
	if b.err != nil {
		return nil, b.err
	}
	if out, err := exec.CommandContext(ctx, b.bin, "version").Output(); err == nil {
		rep.Kallad = strings.TrimSpace(string(out))
	}
	recv, err := startReceiver()
	if err != nil {
		return nil, err
	}
	defer recv.close()
	sched, err := startScheduler(ctx, b.bin, dir, o.schedulerArgs)
	if err != nil {
		return nil, err
	}
	logf("kallad scheduler ready at %s (log: %s)", sched.url, sched.logPath)
	defer func() {
		if serr := sched.stop(); serr != nil && err == nil {
			err = fmt.Errorf("kallad scheduler did not stop cleanly: %v\n%s", serr, sched.tail())
		}
	}()

	rep.LoadBefore = loadAvg()
	for i, p := range o.patterns {
		pr := rep.Patterns[i]
		runErr := runPattern(ctx, o, pgURL, dir, p, pr, sched, recv, logf)
		if runErr != nil {
			if pr.Status == "" {
				pr.Status = "error"
			}
			pr.Error = runErr.Error()
			rep.Failed = true
			logf("%s: %v", p.name, runErr)
			if ctx.Err() != nil {
				break
			}
		}
	}
	rep.LoadAfter = loadAvg()
	return rep, nil
}

func patternIndex(p *pattern) int {
	for i, q := range patterns {
		if q == p {
			return i
		}
	}
	return -1
}

// runPattern submits p's job, waits for its final callback, then has
// Postgres run the same match_sql, and compares.
func runPattern(ctx context.Context, o *options, pgURL, dir string, p *pattern, pr *patternReport,
	sched *scheduler, recv *receiver, logf func(string, ...any)) error {
	left, err := tableURI(pgURL, p, "invoices")
	if err != nil {
		return err
	}
	right, err := tableURI(pgURL, p, "payments")
	if err != nil {
		return err
	}
	pr.RunID = uuid.NewString()
	w, callbackURL := recv.expect(pr.RunID, func(pg kalla.Progress) {
		logf("%s: %s", p.name, pg.Stage)
	})
	job := &kalla.Job{
		RunID:       pr.RunID,
		CallbackURL: callbackURL,
		MatchSQL:    p.sql,
		Sources:     []kalla.SourceSpec{{Alias: "left_src", URI: left}, {Alias: "right_src", URI: right}},
		OutputPath:  filepath.Join(dir, "out", p.name),
		PrimaryKeys: map[string][]string{"left_src": {"invoice_id"}, "right_src": {"payment_id"}},
	}
	pr.LoadAvg = loadAvg()
	sched.resetPeak()
	cpu0, _ := sched.usage()
	logf("%s: submitting run %s (%d invoices, %d payments; load %s)", p.name, pr.RunID, pr.Invoices, pr.Payments, pr.LoadAvg)
	start := time.Now()
	if err := sched.submit(ctx, job); err != nil {
		return err
	}
	submitMS := float64(time.Since(start).Microseconds()) / 1000
	logf("%s: submitted in %.1f ms", p.name, submitMS)
	select {
	case <-w.done:
	case <-sched.exited:
		return fmt.Errorf("kallad scheduler exited during the job: %v\n%s", sched.waitErr, sched.tail())
	case <-time.After(o.timeout):
		return fmt.Errorf("no complete or error callback within %s", o.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, peak := sched.usage()
	if w.failure != nil {
		return fmt.Errorf("error callback: stage %s: %s", w.failure.Stage, w.failure.Error)
	}
	secs := w.at.Sub(start).Seconds()
	res := w.result
	k := &kallaRun{
		Seconds: secs, SubmitMS: submitMS, ElapsedMS: res.ElapsedMS, CPUSeconds: cpu1 - cpu0, PeakRSS: peak,
		Counts: counts{Matched: res.MatchedCount, UnmatchedLeft: res.UnmatchedLeftCount, UnmatchedRight: res.UnmatchedRightCount,
			Left: res.LeftCount, Right: res.RightCount},
	}
	if secs > 0 {
		k.RowsPerSec = float64(res.LeftCount+res.RightCount) / secs
	}
	pr.Kalla = k
	logf("%s: kalla done in %.2fs; running the same SQL in Postgres", p.name, secs)

	pc, psecs, err := postgresRun(ctx, pgURL, p)
	if err != nil {
		return err
	}
	pr.Postgres = &postgresResult{Seconds: psecs, Counts: pc}
	// Late duplicates of the final callback would show here: wait a moment.
	time.Sleep(200 * time.Millisecond)
	k.Finals, k.Progress = recv.finalCount(w)
	switch {
	case k.Counts != pc:
		pr.Status = "MISMATCH"
		return fmt.Errorf("MISMATCH: kalla %+v, postgres %+v", k.Counts, pc)
	case k.Finals != 1:
		pr.Status = "MISMATCH"
		return fmt.Errorf("%d final callbacks for one run, want exactly 1", k.Finals)
	}
	pr.Status = "ok"
	return nil
}

// printTable prints two lines per pattern: Kalla's and Postgres'.
func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "%s   rows (invoices per pattern): %d   cpus: %s\nloadavg before: %s   after: %s\n\n", rep.Kallad, rep.Rows, rep.CPUs, rep.LoadBefore, rep.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tengine\tsubmit ms\tseconds\trows/s\tcpu s\tpeak RSS\tleft\tright\tmatched\tunmatched left\tunmatched right\tstatus\tload (1m 5m 15m)\t")
	for _, p := range rep.Patterns {
		load := strings.Fields(p.LoadAvg)
		load = load[:min(3, len(load))]
		status := p.Status
		if k := p.Kalla; k != nil {
			c := k.Counts
			fmt.Fprintf(tw, "%s\tkalla\t%.1f\t%.2f\t%.0f\t%.1f\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", p.Pattern, k.SubmitMS, k.Seconds, k.RowsPerSec, k.CPUSeconds, mib(k.PeakRSS),
				c.Left, c.Right, c.Matched, c.UnmatchedLeft, c.UnmatchedRight, ifNil(p.Postgres, status), strings.Join(load, " "))
		} else {
			fmt.Fprintf(tw, "%s\tkalla\t-\t-\t-\t-\t-\t%d\t%d\t-\t-\t-\t%s\t%s\t\n", p.Pattern, p.Invoices, p.Payments, status, strings.Join(load, " "))
		}
		if pg := p.Postgres; pg != nil {
			c := pg.Counts
			fmt.Fprintf(tw, "\tpostgres\t\t%.2f\t%.0f\t\t\t%d\t%d\t%d\t%d\t%d\t%s\t\t\n", pg.Seconds, float64(c.Left+c.Right)/pg.Seconds,
				c.Left, c.Right, c.Matched, c.UnmatchedLeft, c.UnmatchedRight, status)
		}
	}
	tw.Flush()
	for _, p := range rep.Patterns {
		if p.Error != "" {
			fmt.Fprintf(w, "\n%s: %s: %s", p.Pattern, p.Status, p.Error)
		}
	}
	fmt.Fprintln(w)
}

// ifNil returns s when pg is nil (the status then goes on Kalla's line).
func ifNil(pg *postgresResult, s string) string {
	if pg == nil {
		return s
	}
	return ""
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// loadAvg is /proc/loadavg: the machine may be busy with other work.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// cpuInfo is the number of CPUs and their model, when Linux tells.
func cpuInfo() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	n, model := 0, ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
		if v, ok := strings.CutPrefix(line, "model name"); ok && model == "" {
			model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return fmt.Sprintf("%d x %s", n, model)
}
