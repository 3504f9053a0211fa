package s3

import (
	"context"

	"github.com/kalla-dev/kalla"
)

// Split implements kalla.Source: Parquet objects are cut at row groups
// (SplitFetch); CSV objects, and sources too small to cut, are one split.
// Filters are the engine's to apply, on the fetched files.
func (s *Source) Split(ctx context.Context, _ []kalla.Filter, n int) (*kalla.SourceSplits, error) {
	splits, err := s.SplitFetch(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(splits) < 2 {
		return kalla.WholeSplits(), nil
	}
	return kalla.NewSourceSplits(splits, nil), nil
}

// Read implements kalla.Source: it copies the objects (Fetch), a split's
// row groups (FetchSplit), or for kalla.SchemaOnly their columns alone
// when they say them (FetchSchema), into dir, for the engine to read.
func (s *Source) Read(ctx context.Context, split kalla.SourceSplit, dir string) (kalla.Reading, error) {
	var files *kalla.FileSource
	var err error
	switch {
	case split.Data != nil:
		files, err = s.FetchSplit(ctx, split, dir)
	case split.Schema:
		if files, err = s.FetchSchema(ctx, dir); files == nil && err == nil {
			files, err = s.Fetch(ctx, dir)
		}
	default:
		files, err = s.Fetch(ctx, dir)
	}
	if err != nil {
		return kalla.Reading{}, err
	}
	return kalla.Reading{Files: files}, nil
}

// Local implements kalla.Source: objects are copied before they are read.
func (*Source) Local() *kalla.FileSource { return nil }
