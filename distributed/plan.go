package distributed

import (
	"context"
	"fmt"

	"github.com/kalla-dev/kalla"
)

// SplitMode says how a job's match is spread over partitions.
type SplitMode string

// The split modes.
const (
	// SplitPartition: both sources are hash-partitioned on an equality key
	// of match_sql (for a job with rules, one every rule joins on);
	// partition p of the left is matched with partition p of the right
	// only. Every candidate pair of a row is then in the row's partition,
	// so each partition's waterfall and exclusive assignment are the whole
	// job's.
	SplitPartition SplitMode = "partition"
	// SplitBroadcast: a plain match_sql (no rules, no exclusive) has no
	// usable equality key; each match task gets one partition of the
	// larger side and all of the smaller. A job with rules or exclusive is
	// never broadcast: every task would offer the smaller side's rows again.
	SplitBroadcast SplitMode = "broadcast"
	// SplitSingle: the query cannot be shown to be partition-safe (an
	// aggregate over a whole source, a set operation, rules without a
	// shared key, ...); one executor runs the whole job.
	SplitSingle SplitMode = "single"
)

// PlanSpec is what the plan task is told: how many parts a staged source of
// files may be cut into, for as many stage tasks.
type PlanSpec struct {
	Splits int `json:"splits"`
}

// SplitPlan is how a job is split, decided by parsing its match_sql (every
// rule's, for a job with rules).
type SplitPlan struct {
	Mode SplitMode `json:"mode"`
	// Reason says why the mode was chosen, for logs.
	Reason string `json:"reason,omitempty"`
	// Hash holds, per source (left, right), the SQL expression over that
	// source's columns whose value modulo the partition count picks a row's
	// partition. In partition mode the two expressions hash equal key values
	// equally.
	Hash [2]string `json:"hash,omitempty"`
	// Direct is set, per source, when the source is Parquet files that
	// every executor reads in place: its partitions are read straight from
	// the files (filtered by Hash modulo the partition count) instead of
	// being staged. Rows then holds that source's row count (after its
	// filters); staged sources report theirs when staged.
	Direct [2]bool  `json:"direct,omitempty"`
	Rows   [2]int64 `json:"rows,omitempty"`
	// Splits holds, per source, the splits of a staged source that the
	// plan cut into parts (local CSV files, S3 Parquet), one stage task
	// each; empty for a source staged whole or split by the coordinator.
	Splits [2][]kalla.SourceSplit `json:"splits,omitempty"`
	// Coordinate is set, per source, for a source whose rows are streamed
	// (Postgres): its splits must be held while stage tasks read them (an
	// exported snapshot), so the coordinator splits it (Runner.Split), not
	// the plan task, which ends first.
	Coordinate [2]bool `json:"coordinate,omitempty"`
	// Spec is the match and how its result identifies source rows.
	Spec kalla.MatchSpec `json:"spec"`
	// AsOf is the carry_over.as_of of a carry-over job, fixed once by
	// the plan (a job that leaves it out runs on the day it starts): the
	// coordinator gives it to every later task, so that each partition
	// ages its rows to the same day.
	AsOf string `json:"as_of,omitempty"`
}

// Plan validates job, attaches its sources (reading no rows) and decides
// how to split it; a staged source of files (local CSV, S3 Parquet) is cut
// into up to p.Splits parts for as many stage tasks.
func (r *Runner) Plan(ctx context.Context, job *kalla.Job, p PlanSpec) (SplitPlan, error) {
	fail := func(err error) (SplitPlan, error) {
		return SplitPlan{}, &kalla.StageError{Stage: kalla.StageValidating, Err: err}
	}
	srcs, _, err := r.Prepare(ctx, job, false)
	if err != nil {
		return fail(err)
	}
	defer kalla.CloseSources(srcs[:])
	sess, err := r.NewSession(ctx, srcs[:], kalla.CarryPaths(job)...)
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	// Stage tasks read the sources in splits: the plan needs only their
	// columns.
	spec, err := r.Bind(ctx, sess, job, srcs, kalla.SchemaOnly)
	if err != nil {
		return fail(err)
	}
	ss, ok := sess.(Session)
	if !ok {
		return SplitPlan{Mode: SplitSingle, Reason: "the engine cannot split jobs", Spec: spec}, nil
	}
	plan, err := ss.PlanSplit(ctx, job)
	if err != nil {
		return fail(err)
	}
	plan.Spec = spec
	if job.CarryOver != nil {
		// Bind fixed the day rows age to; every task of the job uses it.
		plan.AsOf = job.CarryOver.AsOf
	}
	if plan.Mode == SplitSingle {
		return plan, nil
	}
	for i, src := range srcs {
		alias := job.Sources[i].Alias
		if local := src.Local(); local != nil && local.Format == kalla.FormatParquet {
			// A view over the files: Parquet footers hold the row count,
			// so this reads no column unless the source has filters.
			n, err := sess.Load(ctx, alias, nil)
			if err != nil {
				return fail(fmt.Errorf("count rows of %q: %w", alias, err))
			}
			plan.Direct[i], plan.Rows[i] = true, n
			continue
		}
		if ss.ReadsRows(alias) {
			plan.Coordinate[i] = true
			continue
		}
		if plan.Splits[i], err = splitFiles(ctx, ss, src, job.Sources[i], p.Splits); err != nil {
			return fail(fmt.Errorf("split source %q: %w", alias, err))
		}
	}
	return plan, nil
}

// splitFiles cuts a source read as files into up to n splits: the source's
// own (S3 Parquet row groups), else the engine's cut of local CSV files. It
// returns nil when neither cuts it in two or more.
func splitFiles(ctx context.Context, ss Session, src kalla.Source, spec kalla.SourceSpec, n int) ([]kalla.SourceSplit, error) {
	parts, err := src.Split(ctx, spec.Filters, n)
	if err != nil {
		return nil, err
	}
	splits := parts.Splits
	if err := parts.Release(); err != nil {
		return nil, err
	}
	if len(splits) < 2 {
		if splits, err = ss.SplitFiles(ctx, spec.Alias, n); err != nil {
			return nil, err
		}
	}
	if len(splits) < 2 {
		return nil, nil
	}
	return splits, nil
}
