package distributed

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

// Runner runs the tasks of distributed jobs with a kalla.Runner's engine,
// sources and outputs. The embedded Runner also runs a job that cannot be
// split (SplitSingle) whole, and checks every task's job (CheckJob).
type Runner struct {
	*kalla.Runner
}

// NewRunner returns a Runner using r.
func NewRunner(r *kalla.Runner) *Runner { return &Runner{Runner: r} }

// Session is a kalla.Session that can take part in a distributed job. The
// duckdb engine's sessions implement it.
type Session interface {
	kalla.Session
	// PlanSplit parses match_sql, or every rule's (after both sources are
	// attached), and decides how the job can be split.
	PlanSplit(ctx context.Context, job *kalla.Job) (SplitPlan, error)
	// WritePartitions writes the loaded rows of alias into parts folders
	// under dir, PartitionFolder(k) for k in [0, parts), choosing each
	// row's folder by hashExpr modulo parts; every folder gets a file,
	// empty or not.
	WritePartitions(ctx context.Context, alias, hashExpr string, parts int, dir string) (StagedSource, error)
	// SplitFiles cuts the files the attached source alias is read from
	// into up to n splits (kalla.SourceSplit.Cut) that stage tasks
	// attach, or returns nil when it cannot or need not cut them.
	SplitFiles(ctx context.Context, alias string, n int) ([]kalla.SourceSplit, error)
	// ReadsRows reports whether the attached source alias is read as rows
	// streamed to the engine (kalla.Reading.Rows) rather than files.
	ReadsRows(alias string) bool
	// AttachPartition attaches src as alias with its filters, as Attach
	// does, keeping only the rows of one partition. It fails when src
	// cannot be read in place.
	AttachPartition(ctx context.Context, alias string, src kalla.Source, filters []kalla.Filter, part SourcePartition) error
	// AttachStaged declares and loads alias from staged files, restoring
	// the source's column types, and returns its row count.
	AttachStaged(ctx context.Context, alias string, in StagedSet) (int64, error)
	// MergeResults combines partial results into the three result files in
	// dir and returns their sizes. A broadcast side read in place
	// (BroadcastFiles.Source set) must already be attached.
	MergeResults(ctx context.Context, m MergeSpec, dir string) (kalla.Counts, error)
}

// session starts a session that may read the files of job's file sources
// and more (see kalla.Runner.NewSession).
func (r *Runner) session(ctx context.Context, job *kalla.Job, more ...string) (Session, error) {
	var srcs []kalla.Source
	for _, spec := range job.Sources {
		// A source that does not open adds no path: a task reads it
		// only when it reads it in place, and then reports the error.
		if src, err := r.Sources.Open(ctx, spec.URI); err == nil {
			srcs = append(srcs, src)
		}
	}
	defer kalla.CloseSources(srcs)
	return r.splitSession(ctx, srcs, more...)
}

// splitSession starts a session that may read srcs and more, and checks
// that it can run distributed tasks.
func (r *Runner) splitSession(ctx context.Context, srcs []kalla.Source, more ...string) (Session, error) {
	sess, err := r.NewSession(ctx, srcs, more...)
	if err != nil {
		return nil, err
	}
	ss, ok := sess.(Session)
	if !ok {
		sess.Close()
		return nil, fmt.Errorf("engine session %T cannot run distributed tasks", sess)
	}
	return ss, nil
}

// asFolder marks dir as a folder for Engine.NewSession: a task's own
// output folder, known before its session starts.
func asFolder(dir string) string {
	return strings.TrimSuffix(dir, string(filepath.Separator)) + string(filepath.Separator)
}

// attachSource opens side of job and attaches the given part of it, read in
// place.
func (r *Runner) attachSource(ctx context.Context, ss Session, job *kalla.Job, side int, part SourcePartition) (func(), error) {
	spec := job.Sources[side]
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return nil, fmt.Errorf("read source %q (%s): %w", spec.Alias, kalla.RedactURI(spec.URI), err)
	}
	if err := ss.AttachPartition(ctx, spec.Alias, src, spec.Filters, part); err != nil {
		src.Close()
		return nil, fmt.Errorf("read source %q (%s): %w", spec.Alias, kalla.RedactURI(spec.URI), err)
	}
	return func() { src.Close() }, nil
}
