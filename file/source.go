package file

import (
	"context"

	"github.com/kalla-dev/kalla"
)

// Source is local files of one format, which the engine reads where they
// are (see kalla.Source): it is never split by the source itself, and the
// engine cuts CSV files in byte ranges when a cluster job asks for splits.
type Source struct {
	files kalla.FileSource
}

var _ kalla.Source = (*Source)(nil)

// NewSource returns the files pattern (a path or a glob) of format as a
// source, without checking them (OpenSource checks).
func NewSource(pattern string, format kalla.FileFormat) *Source {
	return &Source{files: kalla.FileSource{Pattern: pattern, Format: format}}
}

// Split implements kalla.Source: local files are one split.
func (*Source) Split(context.Context, []kalla.Filter, int) (*kalla.SourceSplits, error) {
	return kalla.WholeSplits(), nil
}

// Read implements kalla.Source: the engine reads the files in place,
// whatever the split (the engine's own Cut says which bytes).
func (s *Source) Read(context.Context, kalla.SourceSplit, string) (kalla.Reading, error) {
	files := s.files
	return kalla.Reading{Files: &files}, nil
}

// Local implements kalla.Source.
func (s *Source) Local() *kalla.FileSource {
	files := s.files
	return &files
}

// Close implements kalla.Source; local files hold nothing.
func (*Source) Close() error { return nil }
