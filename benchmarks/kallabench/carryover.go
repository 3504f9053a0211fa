package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

// The carry-over variants: the benchmark job as the first run of a chain
// (lineage columns, nothing carried) and as the day after (the first run's
// open items carried into the same sources). Both compare with
// kalla-parquet, the same job without carry_over: the ratio is carry-over's
// overhead.
const (
	carryStartVariant = "kalla-carry-start"
	carryDay2Variant  = "kalla-carry-day2"
)

// The chain's days and expiry. Every invoice_date lies in 2024, so on day 2
// the invoices carried by invoice_date are 367 days old at most: under
// carryMaxAge, none expires, and the expiry is evaluated on every carried row.
// Payments have no invoice_date, so they age from first seen: one day.
const (
	carryDay1   = "2025-01-01"
	carryDay2   = "2025-01-02"
	carryMaxAge = 400
	carryAgeBy  = "invoice_date"
)

// carryJob is the benchmark job over the Parquet files writing to the
// output folder name, with carry_over from the folder from ("" starts a
// chain) on day asOf.
func (b *benchChild) carryJob(name, from, asOf string, data *benchdata.Set) (string, error) {
	job := benchdata.Job(data.InvoicesParquet, data.PaymentsParquet, filepath.Join(b.dir, "out", name))
	maxAge := carryMaxAge
	job.CarryOver = &kalla.CarryOver{From: from, AsOf: asOf, AgeFrom: carryAgeBy, MaxAgeDays: &maxAge}
	raw, err := kalla.MarshalIndent(&job)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "job-"+name+".json")
	return path, os.WriteFile(path, raw, 0o600)
}

// carryVariants returns the two carry-over variants. Day 2 needs a day 1
// result to carry from: it is produced here, once and untimed, in its own
// folder, and checked, so that the timed day-2 runs all carry the same
// open items.
func (c *benchCommand) carryVariants(ctx context.Context, child *benchChild, data *benchdata.Set) ([]*benchVariant, error) {
	start, err := child.carryJob(carryStartVariant, "", carryDay1, data)
	if err != nil {
		return nil, fmt.Errorf("write the carry-over start job: %w", err)
	}
	const seed = "carry-day1"
	seedJob, err := child.carryJob(seed, "", carryDay1, data)
	if err != nil {
		return nil, fmt.Errorf("write the carry-over day 1 job: %w", err)
	}
	seedDir := filepath.Join(child.dir, "out", seed)
	began := time.Now()
	if _, err := child.runKalla(ctx, seedJob); err != nil {
		return nil, fmt.Errorf("run day 1 of the carry-over chain: %w", err)
	}
	day1, err := readSummary(seedDir)
	if err != nil {
		return nil, err
	}
	if err := checkCarryStart(day1, data.Expected); err != nil {
		return nil, fmt.Errorf("day 1 of the carry-over chain: %w", err)
	}
	c.logf("ran day 1 of the carry-over chain (untimed) in %.1fs: %d invoices and %d payments open",
		time.Since(began).Seconds(), day1.UnmatchedLeftCount, day1.UnmatchedRightCount)
	day2, err := child.carryJob(carryDay2Variant, seedDir, carryDay2, data)
	if err != nil {
		return nil, fmt.Errorf("write the carry-over day 2 job: %w", err)
	}
	return []*benchVariant{
		{Name: carryStartVariant, Reference: "kalla-parquet",
			Note: "kalla-parquet as the first run of a carry-over chain: lineage columns on every row, nothing carried",
			run: func(ctx context.Context) (benchRun, error) {
				return child.runChecked(ctx, start, func(res *kalla.Result) error { return checkCarryStart(res, data.Expected) })
			}},
		{Name: carryDay2Variant, Reference: "kalla-parquet",
			Note: fmt.Sprintf("kalla-parquet the day after: day 1's %d open invoices and %d open payments carried into the same sources (all sent again, so replaced), max_age_days %d by %s",
				day1.UnmatchedLeftCount, day1.UnmatchedRightCount, carryMaxAge, carryAgeBy),
			run: func(ctx context.Context) (benchRun, error) {
				return child.runChecked(ctx, day2, func(res *kalla.Result) error { return checkCarryDay2(res, day1) })
			}},
	}, nil
}

// runChecked runs the Kalla job of jobPath and checks its summary.json with
// check: the counts every variant reports cannot show what carry-over did.
func (b *benchChild) runChecked(ctx context.Context, jobPath string, check func(*kalla.Result) error) (benchRun, error) {
	run, err := b.runKalla(ctx, jobPath)
	if err != nil {
		return run, err
	}
	f, err := os.Open(jobPath)
	if err != nil {
		return run, err
	}
	job, err := kalla.DecodeJob(f)
	f.Close()
	if err != nil {
		return run, fmt.Errorf("read job %s: %w", jobPath, err)
	}
	res, err := readSummary(job.OutputPath)
	if err != nil {
		return run, err
	}
	return run, check(res)
}

// readSummary reads the summary.json of the output folder dir.
func readSummary(dir string) (*kalla.Result, error) {
	raw, err := os.ReadFile(filepath.Join(dir, kalla.SummaryFile))
	if err != nil {
		return nil, fmt.Errorf("read the carry-over result: %w", err)
	}
	var res kalla.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, kalla.SummaryFile), err)
	}
	return &res, nil
}

// checkCarryStart checks a chain's first run: the plain job's counts, and
// nothing carried, cleared, replaced or expired; every open item is aged.
func checkCarryStart(res *kalla.Result, want benchdata.Counts) error {
	if got := benchdata.ResultCounts(res); got != want {
		return fmt.Errorf("counts %s, expected %s", got, want)
	}
	co := res.CarryOver
	if co == nil || res.Ageing == nil {
		return fmt.Errorf("summary.json has no carry_over or no ageing: %+v", res)
	}
	zero := kalla.CarryOverCounts{AsOf: carryDay1}
	if *co != zero {
		return fmt.Errorf("carry_over %+v, want nothing carried on %s", *co, carryDay1)
	}
	return checkAgeing(res, 0)
}

// checkCarryDay2 checks day 2 against day 1's result: the same sources
// again, so every open item of day 1 is carried and replaced by today's
// row, none clears (today's rows are those that did not match yesterday),
// none expires (see carryMaxAge), and the counts are day 1's.
func checkCarryDay2(res, day1 *kalla.Result) error {
	if got, want := benchdata.ResultCounts(res), benchdata.ResultCounts(day1); got != want {
		return fmt.Errorf("counts %s, expected day 1's %s", got, want)
	}
	if res.CarryOver == nil || res.Ageing == nil {
		return fmt.Errorf("summary.json has no carry_over or no ageing: %+v", res)
	}
	open := kalla.SideCount{Left: day1.UnmatchedLeftCount, Right: day1.UnmatchedRightCount}
	want := kalla.CarryOverCounts{FromRunID: day1.RunID, AsOf: carryDay2, Carried: open, Replaced: open}
	if *res.CarryOver != want {
		return fmt.Errorf("carry_over %+v, want %+v", *res.CarryOver, want)
	}
	return checkAgeing(res, 1)
}

// checkAgeing checks that the ageing buckets hold every unmatched row, and
// that the payments, which age from first seen (day 1), are rightDays old.
func checkAgeing(res *kalla.Result, rightDays int64) error {
	a := res.Ageing
	for _, s := range []struct {
		side string
		b    kalla.AgeBuckets
		want int64
	}{{"left", a.Left, res.UnmatchedLeftCount}, {"right", a.Right, res.UnmatchedRightCount}} {
		if sum := s.b.Days0 + s.b.Days1to7 + s.b.Days8to30 + s.b.Days31to90 + s.b.Over90; sum != s.want {
			return fmt.Errorf("ageing %s %+v holds %d rows, want the %d unmatched", s.side, s.b, sum, s.want)
		}
	}
	if o := a.Right.OldestDays; res.UnmatchedRightCount > 0 && (o == nil || *o != rightDays) {
		return fmt.Errorf("ageing right: oldest %v days, want %d (payments age from first seen)", o, rightDays)
	}
	return nil
}
