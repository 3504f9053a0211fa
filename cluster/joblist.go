package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kalla-dev/kalla"
)

// List implements kalla.JobStore. It walks the list stream backwards from
// the cursor (a list sequence), reading one record per entry, so a page
// costs limit reads whatever the store holds.
func (s *Store) List(ctx context.Context, limit int, after string) ([]*kalla.JobRecord, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("list jobs: limit %d must be at least 1", limit)
	}
	info, err := s.list.Info(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	first, seq := info.State.FirstSeq, info.State.LastSeq
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil || n == 0 {
			return nil, "", fmt.Errorf("list jobs: %w %q", kalla.ErrBadCursor, after)
		}
		seq = min(seq, n-1)
	}
	var recs []*kalla.JobRecord
	for ; seq >= max(first, 1) && len(recs) < limit; seq-- {
		rec, err := s.listed(ctx, seq)
		if err != nil {
			return nil, "", err
		}
		if rec != nil {
			recs = append(recs, rec)
		}
	}
	next := ""
	if len(recs) == limit && seq >= max(first, 1) {
		next = strconv.FormatUint(seq+1, 10)
	}
	return recs, next, nil
}

// listed returns the record of list entry seq, or nil when the entry is
// deleted or stale.
func (s *Store) listed(ctx context.Context, seq uint64) (*kalla.JobRecord, error) {
	msg, err := s.list.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list jobs: read entry %d: %w", seq, err)
	}
	rec, err := s.Get(ctx, string(msg.Data))
	switch {
	case errors.Is(err, kalla.ErrJobNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case rec.ListSeq != seq:
		return nil, nil
	}
	return rec, nil
}

// makeRoomScan bounds the entries Create examines for a record to remove
// when the store is full, so that a store full of records it may not remove
// (jobs waiting or running, callbacks not delivered) answers quickly.
const makeRoomScan = 1000

// makeRoom removes old finished records when the store is at MaxRecords;
// it returns kalla.ErrStoreFull when none may be removed.
func (s *Store) makeRoom(ctx context.Context) error {
	info, err := s.list.Info(ctx)
	if err != nil {
		return fmt.Errorf("check job store size: %w", err)
	}
	if int(info.State.Msgs) < s.cfg.MaxRecords {
		return nil
	}
	if _, err := s.sweep(ctx, 1, makeRoomScan); err != nil {
		return err
	}
	if info, err = s.list.Info(ctx); err != nil {
		return fmt.Errorf("check job store size: %w", err)
	}
	if int(info.State.Msgs) >= s.cfg.MaxRecords {
		return fmt.Errorf("%w: %d records, none finished with its callback delivered (--max-stored-jobs %d)",
			kalla.ErrStoreFull, info.State.Msgs, s.cfg.MaxRecords)
	}
	return nil
}

// Sweep removes the records of jobs that ended more than Retention ago,
// and, while the store holds more than MaxRecords, the oldest records of
// finished jobs whose callback is delivered. It never removes the record of
// a queued or running job. It returns how many records it removed.
func (s *Store) Sweep(ctx context.Context) (int, error) { return s.sweep(ctx, 0, 0) }

// sweep is Sweep making room for need more records, examining at most scan
// list entries (0: no bound).
func (s *Store) sweep(ctx context.Context, need, scan int) (int, error) {
	info, err := s.list.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep job store: %w", err)
	}
	count := int(info.State.Msgs)
	cutoff := time.Now().Add(-s.cfg.Retention)
	removed, examined := 0, 0
	for seq := max(info.State.FirstSeq, 1); seq <= info.State.LastSeq; seq++ {
		if scan > 0 && examined >= scan {
			break
		}
		examined++
		over := count+need > s.cfg.MaxRecords
		msg, err := s.list.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("sweep job store: read entry %d: %w", seq, err)
		}
		runID := string(msg.Data)
		rec, err := s.Get(ctx, runID)
		switch {
		case errors.Is(err, kalla.ErrJobNotFound) || (err == nil && rec.ListSeq != seq):
			if err := s.unlist(ctx, seq); err != nil {
				return removed, err
			}
			count--
			continue
		case err != nil:
			return removed, fmt.Errorf("sweep job store: %w", err)
		}
		if !over && rec.CreatedAt.After(cutoff) {
			// Every later record is younger than the retention too (a job
			// ends after it is created), and the store is within bounds.
			break
		}
		expired := rec.State.Final() && rec.FinishedAt != nil && rec.FinishedAt.Before(cutoff)
		evictable := over && rec.State.Final() && !rec.NeedsCallback()
		if !expired && !evictable {
			continue
		}
		if err := s.records.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.cfg.Bucket+"."+runID)); err != nil {
			return removed, fmt.Errorf("sweep job store: remove job %s: %w", runID, err)
		}
		if err := s.unlist(ctx, seq); err != nil {
			return removed, err
		}
		removed++
		count--
	}
	return removed, nil
}

func (s *Store) unlist(ctx context.Context, seq uint64) error {
	if err := s.list.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("sweep job store: remove list entry %d: %w", seq, err)
	}
	return nil
}

// Maintain sweeps the store every interval until ctx is done. Several
// schedulers on one store may all run it: removals are idempotent.
func (s *Store) Maintain(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("sweep job store", "err", err)
		case n > 0:
			log.Info("job records removed", "removed", n, "retention", s.cfg.Retention, "max_records", s.cfg.MaxRecords)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// listUnlisted lists, oldest first, the records of a bucket made before the
// list stream existed. It runs when the list is empty, so once.
func (s *Store) listUnlisted(ctx context.Context) error {
	info, err := s.list.Info(ctx)
	if err != nil {
		return fmt.Errorf("open job list stream: %w", err)
	}
	if info.State.LastSeq > 0 {
		return nil
	}
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list job keys: %w", err)
	}
	type entry struct {
		runID   string
		created time.Time
	}
	var old []entry
	for k := range keys.Keys() {
		rec, err := s.Get(ctx, k)
		if err != nil {
			continue
		}
		old = append(old, entry{k, rec.CreatedAt})
	}
	slices.SortFunc(old, func(a, b entry) int { return a.created.Compare(b.created) })
	for _, e := range old {
		ack, err := s.js.Publish(ctx, s.subject, []byte(e.runID), jetstream.WithMsgID(e.runID))
		if err != nil {
			return fmt.Errorf("list job %s: %w", e.runID, err)
		}
		_, err = kalla.UpdateJob(ctx, s, e.runID, func(r *kalla.JobRecord) error {
			r.ListSeq = ack.Sequence
			return nil
		})
		if err != nil && !errors.Is(err, kalla.ErrJobNotFound) {
			return fmt.Errorf("list job %s: %w", e.runID, err)
		}
	}
	return nil
}
