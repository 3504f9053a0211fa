package postgres

import (
	"context"

	"github.com/kalla-dev/kalla"
)

// Read implements kalla.Source: the rows are streamed to the engine (COPY
// binary into its data chunks), the whole table by Scan, a split by
// ScanSplit. It does no I/O: Columns and Scan connect.
func (s *Source) Read(_ context.Context, split kalla.SourceSplit, _ string) (kalla.Reading, error) {
	if split.Data == nil {
		return kalla.Reading{Rows: s}, nil
	}
	return kalla.Reading{Rows: splitReader{s: s, split: split}}, nil
}

// Local implements kalla.Source: a table is not local files.
func (*Source) Local() *kalla.FileSource { return nil }

// splitReader reads one split made by Split.
type splitReader struct {
	s     *Source
	split kalla.SourceSplit
}

// Columns returns the columns decided when the source was split.
func (r splitReader) Columns(context.Context) ([]kalla.Column, error) { return r.split.Columns, nil }

// Scan reads the split only.
func (r splitReader) Scan(ctx context.Context, filters []kalla.Filter, parallelism int, sink kalla.RowSink) error {
	return r.s.ScanSplit(ctx, filters, r.split, parallelism, sink)
}
