package kalla

import (
	"encoding/json"
	"sync"
)

// SourceSplit is one split of a Source, as it travels in an executor task:
// the columns decided when the source was split (so that every split is
// read with the same types) and the source's own description of its share
// of the rows. The zero value, Whole, is the whole source.
type SourceSplit struct {
	// Columns are the columns every split is read with; nil lets Read
	// decide them.
	Columns []Column `json:"columns"`
	// Data is the source's description of its share; nil for Whole.
	Data json.RawMessage `json:"data,omitempty"`
	// Cut is the engine's own cut of the files a source reads as (local
	// CSV byte ranges, see Source): the source reads Whole, the engine
	// only Cut's share of it.
	Cut json.RawMessage `json:"cut,omitempty"`
	// Schema asks Read for the columns only when the source can give them
	// without its data (see Source.Read). It never travels.
	Schema bool `json:"-"`
}

// Whole is the split that reads a whole source.
var Whole = SourceSplit{}

// SchemaOnly is Whole for a reader that needs only the columns (a plan
// validating a job whose splits are read by other tasks).
var SchemaOnly = SourceSplit{Schema: true}

// IsWhole reports whether s reads the whole source.
func (s SourceSplit) IsWhole() bool { return s.Data == nil && s.Cut == nil }

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

// WholeSplits is what Split returns for a source it does not cut: one
// split, Whole, holding nothing.
func WholeSplits() *SourceSplits { return NewSourceSplits([]SourceSplit{Whole}, nil) }

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
