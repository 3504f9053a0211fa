package distributed

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/kalla-dev/kalla"
)

// MergeSpec tells the merge which partial results to combine.
type MergeSpec struct {
	Spec kalla.MatchSpec `json:"spec"`
	// Matched are the partial matched files, one per partition, and
	// Suggested the partial suggested files of a job that suggests.
	Matched   []string `json:"matched"`
	Suggested []string `json:"suggested,omitempty"`
	// Unmatched holds, per side, the partial unmatched files; nil for the
	// side that was broadcast, whose unmatched rows are computed against
	// all matches instead.
	Unmatched [2][]string `json:"unmatched"`
	// Broadcast is the broadcast side (0 or 1) and its staged files; -1 when
	// nothing was broadcast. Only a plain match_sql job (Spec.Plain) is
	// broadcast.
	Broadcast      int       `json:"broadcast"`
	BroadcastFiles StagedSet `json:"broadcast_files"`
	// Counts are the source row counts, and Start when the job started
	// (for elapsed_ms), both reported in the result.
	Counts [2]int64  `json:"counts"`
	Start  time.Time `json:"start"`
	// Rules sums the match tasks' per-rule counts, and Reasons their
	// counts of unmatched rows by reason.
	Rules   []kalla.RuleCount   `json:"rules,omitempty"`
	Reasons *kalla.ReasonCounts `json:"reasons,omitempty"`
	// CarryOver and Ageing sum what the match tasks of a carry-over job
	// carried over, and Expired holds, per side, their partial expired
	// files (a job with max_age_days); see AddCarried.
	CarryOver *kalla.CarryOverCounts `json:"carry_over,omitempty"`
	Ageing    *kalla.Ageing          `json:"ageing,omitempty"`
	Expired   [2][]string            `json:"expired,omitzero"`
}

// AddPartition adds the partial results of the match task that wrote the
// staging folder dir (see MatchDir).
func (m *MergeSpec) AddPartition(dir string) {
	matched, unmatched := matchResults(dir)
	m.Matched = append(m.Matched, matched)
	if m.Spec.Suggests() {
		m.Suggested = append(m.Suggested, path.Join(dir, kalla.SuggestedFile))
	}
	for side := range 2 {
		if side != m.Broadcast {
			m.Unmatched[side] = append(m.Unmatched[side], unmatched[side])
		}
	}
}

// AddCarried adds what the match task that wrote the staging folder dir
// carried over: its counts c and, when the job expires rows, its partial
// expired files. Each partition carried the previous run's rows of its
// own keys, so the counts and buckets add up; the oldest is the largest.
func (m *MergeSpec) AddCarried(dir string, c kalla.Counts, expires bool) error {
	if c.CarryOver == nil || c.Ageing == nil {
		return fmt.Errorf("the match task of %s reported no carry-over counts", dir)
	}
	m.CarryOver = m.CarryOver.Add(c.CarryOver)
	m.Ageing = m.Ageing.Add(c.Ageing)
	if expires {
		m.Expired[0] = append(m.Expired[0], path.Join(dir, kalla.ExpiredLeftFile))
		m.Expired[1] = append(m.Expired[1], path.Join(dir, kalla.ExpiredRightFile))
	}
	return nil
}

// SetBroadcast points the merge at the whole of the broadcast side, where
// the match tasks found it (s): its staged files in st, or the source read
// in place. It does nothing when nothing was broadcast.
func (m *MergeSpec) SetBroadcast(ctx context.Context, st Staging, s PartitionSide) error {
	switch {
	case m.Broadcast < 0:
	case s.Direct:
		m.BroadcastFiles = StagedSet{Source: &SourcePartition{Partition: -1}}
	default:
		files, err := StagedFiles(ctx, st, s.StageDirs, -1)
		if err != nil {
			return err
		}
		m.BroadcastFiles = StagedSet{Files: files, Columns: s.Columns}
	}
	return nil
}

// files lists the file lists m names, to fetch or allow them.
func (m *MergeSpec) files() []*[]string {
	return []*[]string{&m.Matched, &m.Unmatched[0], &m.Unmatched[1], &m.BroadcastFiles.Files, &m.Suggested, &m.Expired[0], &m.Expired[1]}
}

// Fetch fetches the partial results and broadcast files m names from st
// into scratch and returns m naming the local copies.
func (m MergeSpec) Fetch(ctx context.Context, st Staging, scratch string) (MergeSpec, error) {
	lists := m.files()
	var keys []string
	for _, l := range lists {
		keys = append(keys, *l...)
	}
	paths, err := st.Fetch(ctx, keys, scratch)
	if err != nil {
		return m, fmt.Errorf("fetch partial results: %w", err)
	}
	for _, l := range lists {
		n := len(*l)
		if n > 0 {
			*l, paths = paths[:n:n], paths[n:]
		}
	}
	return m, nil
}

// Merge combines the partial results into job's output, writes
// summary.json and publishes them, as kalla.Runner.Run does at its end.
func (r *Runner) Merge(ctx context.Context, job *kalla.Job, m MergeSpec) (*kalla.Result, error) {
	fail := func(err error) (*kalla.Result, error) {
		return nil, &kalla.StageError{Stage: kalla.StageWriting, Err: err}
	}
	if m.Broadcast >= 0 && !m.Spec.Plain() {
		// The broadcast side's unmatched rows are computed from the first
		// rule's keys alone, right only for a plain match_sql.
		return fail(errors.New("a job with rules or exclusive is never broadcast"))
	}
	switch {
	case job.CarryOver != nil && m.CarryOver == nil:
		return fail(errors.New("the match tasks of a carry-over job reported no carry-over counts"))
	case job.CarryOver == nil && m.CarryOver != nil:
		return fail(errors.New("carry-over counts for a job without carry_over"))
	}
	out, err := r.Outputs.Open(ctx, job.OutputPath)
	if err != nil {
		return fail(err)
	}
	// The output's folder exists before the session starts, so the
	// session's database may write into it directly.
	dir, err := out.Prepare(ctx)
	if err != nil {
		return fail(fmt.Errorf("prepare output %s: %w", kalla.RedactURI(job.OutputPath), err))
	}
	published := false
	defer func() {
		if !published {
			out.Discard(dir)
		}
	}()
	allowed := []string{asFolder(dir)}
	for _, files := range m.files() {
		allowed = append(allowed, *files...)
	}
	ss, err := r.session(ctx, job, allowed...)
	if err != nil {
		return fail(err)
	}
	defer ss.Close()
	if m.Broadcast >= 0 && m.BroadcastFiles.Source != nil {
		done, err := r.attachSource(ctx, ss, job, m.Broadcast, *m.BroadcastFiles.Source)
		if err != nil {
			return fail(fmt.Errorf("load broadcast side: %w", err))
		}
		defer done()
	}
	c, err := ss.MergeResults(ctx, m, dir)
	if err != nil {
		return fail(fmt.Errorf("merge partial results: %w", err))
	}
	c.Rules, c.Reasons = m.Rules, m.Reasons
	c.CarryOver, c.Ageing = m.CarryOver, m.Ageing
	res, err := kalla.PublishResult(ctx, job, out, dir, c, m.Counts, m.Start)
	if err != nil {
		return fail(err)
	}
	published = true
	return res, nil
}
