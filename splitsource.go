package kalla

import (
	"context"
	"encoding/json"
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
