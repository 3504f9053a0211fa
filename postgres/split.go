package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kalla-dev/kalla"
)

var _ kalla.Source = (*Source)(nil)

// splitRange is the Data of one split: a page range of the table read on
// the snapshot the splitting transaction exported. Pages is the table's
// size when it was split, the end of the open last range for dividing it
// further.
type splitRange struct {
	Snapshot string `json:"snapshot,omitempty"`
	Lo       int64  `json:"lo"`
	Hi       int64  `json:"hi"`
	Pages    int64  `json:"pages"`
}

// Split implements kalla.Source. With n < 2 it is Whole, without I/O.
// Otherwise a transaction of its own, on a
// connection of its own, exports its snapshot and measures the table; the
// splits are the page ranges Scan would read in parallel, and each imports
// that snapshot, so together they read every row exactly once however the
// table changes meanwhile. The transaction stays open until the splits are
// released (or the source is closed). A table too small to divide, or a
// view, is one split without a snapshot: ScanSplit then reads it as Scan
// does.
func (s *Source) Split(ctx context.Context, filters []kalla.Filter, n int) (*kalla.SourceSplits, error) {
	if n < 2 {
		return kalla.WholeSplits(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	splits, err := s.split(ctx, filters, n)
	return splits, s.scrub(err)
}

func (s *Source) split(ctx context.Context, filters []kalla.Filter, n int) (*kalla.SourceSplits, error) {
	rel, err := s.relation(ctx)
	if err != nil {
		return nil, err
	}
	fs, err := buildFilters(rel, filters)
	if err != nil {
		return nil, err
	}
	cols := make([]kalla.Column, len(rel.cols))
	for i, c := range rel.cols {
		cols[i] = kalla.Column{Name: c.name, Type: c.typ}
	}
	whole := func(r splitRange) (*kalla.SourceSplits, error) {
		data, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		return kalla.NewSourceSplits([]kalla.SourceSplit{{Columns: cols, Data: data}}, nil), nil
	}
	if n <= 1 || !splittable(rel) {
		return whole(splitRange{Lo: -1, Hi: -1})
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	release := func() error {
		once.Do(func() {
			// Ending the read-only transaction ends the exported snapshot.
			// ROLLBACK first, and only then close: the server ends a
			// closed connection's transaction when it notices, so a split
			// read right after Close could still import the snapshot.
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(cctx, "ROLLBACK")
			conn.Close(cctx)
		})
		return nil
	}
	kept := false
	defer func() {
		if !kept {
			release()
		}
	}()
	if _, err := conn.Exec(ctx, beginSnapshot); err != nil {
		return nil, fmt.Errorf("begin snapshot on %s: %w", s.addr, err)
	}
	if err := s.checkFilters(ctx, conn, fs, filters); err != nil {
		return nil, err
	}
	pages, err := measure(ctx, conn, rel)
	if err != nil {
		return nil, err
	}
	ranges := s.divide(pageRange{-1, -1}, pages, n)
	if len(ranges) == 1 {
		return whole(splitRange{Lo: -1, Hi: -1, Pages: pages})
	}
	snapshot, err := exportSnapshot(ctx, conn, rel)
	if err != nil {
		return nil, err
	}
	splits := make([]kalla.SourceSplit, len(ranges))
	for i, r := range ranges {
		data, err := json.Marshal(splitRange{Snapshot: snapshot, Lo: r.lo, Hi: r.hi, Pages: pages})
		if err != nil {
			return nil, err
		}
		splits[i] = kalla.SourceSplit{Columns: cols, Data: data}
	}
	s.held = append(s.held, release)
	kept = true
	s.log.Debug("split", "splits", len(ranges), "pages", pages)
	return kalla.NewSourceSplits(splits, release), nil
}

// ScanSplit reads the split's page
// range, divided again into up to parallelism streams, every stream in a
// transaction that imports the split's snapshot. The columns are read as
// split.Columns declares; a table whose columns changed since the split
// is an error.
func (s *Source) ScanSplit(ctx context.Context, filters []kalla.Filter, split kalla.SourceSplit, parallelism int, sink kalla.RowSink) error {
	var r splitRange
	if err := json.Unmarshal(split.Data, &r); err != nil {
		return fmt.Errorf("read postgres split: %w", err)
	}
	if r.Snapshot != "" && !snapshotRe.MatchString(r.Snapshot) {
		return fmt.Errorf("read postgres split: malformed snapshot id %q", r.Snapshot)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	return s.scrub(s.scanSplit(ctx, cancel, filters, split.Columns, r, parallelism, sink))
}

func (s *Source) scanSplit(ctx context.Context, cancel context.CancelFunc, filters []kalla.Filter, declared []kalla.Column, r splitRange, parallelism int, sink kalla.RowSink) error {
	rel, err := s.relationAs(ctx, declared)
	if err != nil {
		return err
	}
	got := make([]kalla.Column, len(rel.cols))
	for i, c := range rel.cols {
		got[i] = kalla.Column{Name: c.name, Type: c.typ}
	}
	if !slices.Equal(got, declared) {
		return fmt.Errorf("the columns of %s changed since the job was split: now %s", rel.display, rel.columnNames())
	}
	if r.Snapshot == "" {
		return s.scan(ctx, cancel, filters, parallelism, sink)
	}
	fs, err := buildFilters(rel, filters)
	if err != nil {
		return err
	}
	ranges := s.divide(pageRange{r.Lo, r.Hi}, r.Pages, parallelism)
	start := time.Now()
	rows, err := s.readRanges(ctx, cancel, rel, fs, ranges, nil, r.Snapshot, sink)
	if err != nil {
		return err
	}
	s.log.Debug("scanned split", "rows", rows, "pages", pageRange{r.Lo, r.Hi}.where(), "streams", len(ranges),
		"elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// releaseHeld ends the transactions of splits not released yet.
func (s *Source) releaseHeld() {
	for _, release := range s.held {
		release()
	}
	s.held = nil
}
