package kalla

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// SplittableSource is a RowSource that several processes can read at once,
// each reading one split, all of them seeing the same rows: in cluster mode
// the coordinator splits the source and each split is staged by its own
// executor task. Postgres sources implement it: the splits are ctid page
// ranges read on a snapshot the coordinator's transaction exports.
type SplittableSource interface {
	RowSource
	// Split divides the rows that pass filters into at most n splits that
	// hold every such row exactly once, and decides the columns every split
	// is read with. It may return fewer splits (one for a small table). The
	// caller must Release the result once every split has been read: until
	// then the source holds what keeps the splits consistent (Postgres: the
	// transaction whose snapshot the splits import). Filter errors are
	// *ValidationError, as from Scan.
	Split(ctx context.Context, filters []Filter, n int) (*SourceSplits, error)
	// ScanSplit writes the rows of one split that pass filters to sink, as
	// Scan does for the whole source, in up to parallelism streams. The
	// filters must be those given to Split.
	ScanSplit(ctx context.Context, filters []Filter, split SourceSplit, parallelism int, sink RowSink) error
}

// SplittableFetch is a FetchSource whose data several processes can fetch
// in parts, each part a complete set of local files, all parts together
// every row once: in cluster mode the plan task splits it, as it cuts
// local files, and each stage task fetches one split. S3 Parquet objects
// implement it, cut at row groups read from their footers, so an executor
// fetches only the row groups of its split.
type SplittableFetch interface {
	FetchSource
	// SplitFetch divides the source into at most n splits of about equal
	// size; it returns fewer than two when the source cannot be cut.
	SplitFetch(ctx context.Context, n int) ([]SourceSplit, error)
	// FetchSplit copies one split into dir, as Fetch copies the whole
	// source.
	FetchSplit(ctx context.Context, split SourceSplit, dir string) (*FileSource, error)
	// FetchSchema copies into dir files that hold the source's columns
	// and no row, enough to validate a job, or returns nil when the
	// columns depend on the data (CSV typing reads every value).
	FetchSchema(ctx context.Context, dir string) (*FileSource, error)
}

// schemaOnlySource is a SplittableFetch whose Fetch brings only its
// columns when it can: a distributed job's plan validates the job without
// fetching data that the stage tasks fetch in splits.
type schemaOnlySource struct{ SplittableFetch }

// Fetch fetches the schema, or the whole source when the columns need it.
func (s schemaOnlySource) Fetch(ctx context.Context, dir string) (*FileSource, error) {
	fs, err := s.FetchSchema(ctx, dir)
	if fs != nil || err != nil {
		return fs, err
	}
	return s.SplittableFetch.Fetch(ctx, dir)
}

// splitFetchSource is one split of a SplittableFetch seen as a whole
// FetchSource, so the engine attaches it as any other.
type splitFetchSource struct {
	SplittableFetch
	split SourceSplit
}

// Fetch fetches the split only.
func (s splitFetchSource) Fetch(ctx context.Context, dir string) (*FileSource, error) {
	return s.FetchSplit(ctx, s.split, dir)
}

// SourceSplit is one split of a SplittableSource, as it travels in an
// executor task: the columns decided when the source was split (so that
// every split is read with the same types) and the source's own
// description of its share of the rows.
type SourceSplit struct {
	Columns []Column        `json:"columns"`
	Data    json.RawMessage `json:"data"`
}

// SourceSplits are the splits of a source and what holds them consistent.
type SourceSplits struct {
	Splits  []SourceSplit
	release func() error
	once    sync.Once
	err     error
}

// NewSourceSplits returns splits that release calls, once, to end what
// keeps them consistent. release may be nil.
func NewSourceSplits(splits []SourceSplit, release func() error) *SourceSplits {
	return &SourceSplits{Splits: splits, release: release}
}

// Release ends what keeps the splits consistent; it is safe to call more
// than once and returns the first call's error.
func (s *SourceSplits) Release() error {
	s.once.Do(func() {
		if s.release != nil {
			s.err = s.release()
		}
	})
	return s.err
}

// splitRowSource is one split of a source seen as a whole RowSource, so the
// engine attaches and loads it as any other.
type splitRowSource struct {
	SplittableSource
	split SourceSplit
}

// Columns returns the columns decided when the source was split.
func (s splitRowSource) Columns(context.Context) ([]Column, error) { return s.split.Columns, nil }

// Scan reads the split only.
func (s splitRowSource) Scan(ctx context.Context, filters []Filter, parallelism int, sink RowSink) error {
	return s.ScanSplit(ctx, filters, s.split, parallelism, sink)
}

// SplitSource splits source side of job into at most n splits for as many
// stage tasks. It returns nil when the source cannot be split or is too
// small to be worth it (fewer than two splits); the caller then stages it
// whole. Otherwise the caller must Release the result when every split is
// staged (or the job ended): that also closes the source.
func (r *Runner) SplitSource(ctx context.Context, job *Job, side, n int) (*SourceSplits, error) {
	spec := job.Sources[side]
	fail := func(err error) (*SourceSplits, error) {
		err = fmt.Errorf("split source %q (%s): %w", spec.Alias, RedactURI(spec.URI), err)
		if IsValidation(err) {
			return nil, err
		}
		return nil, &StageError{Stage: StageStaging, Err: err}
	}
	if n < 2 {
		return nil, nil
	}
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return fail(err)
	}
	ss, ok := src.(SplittableSource)
	if !ok {
		src.Close()
		return nil, nil
	}
	splits, err := ss.Split(ctx, spec.Filters, n)
	if err != nil {
		src.Close()
		return fail(err)
	}
	if len(splits.Splits) < 2 {
		err := errors.Join(splits.Release(), src.Close())
		if err != nil {
			r.logger().Warn("release source split failed", "alias", spec.Alias, "err", err)
		}
		return nil, nil
	}
	release := splits.release
	splits.release = func() error {
		var err error
		if release != nil {
			err = release()
		}
		return errors.Join(err, src.Close())
	}
	return splits, nil
}
