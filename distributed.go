package kalla

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Cluster mode splits one job into tasks that executors run: a plan, one
// staging task per split of each source (read it and hash-partition its rows
// into Parquet files; a SplittableSource gives several splits, any other
// source one) unless the source is Parquet files that match tasks read in
// place, one match task per partition, and a merge that writes the three
// result files. The methods below are those tasks; the cluster package only
// moves them between processes. Each produces exactly what the same part of
// Runner.Run produces, so a distributed job's results equal a local run's.

// SplitMode says how a job's match is spread over partitions.
type SplitMode string

// The split modes.
const (
	// SplitPartition: both sources are hash-partitioned on an equality key
	// of match_sql; partition p of the left is matched with partition p of
	// the right only.
	SplitPartition SplitMode = "partition"
	// SplitBroadcast: match_sql has no usable equality key; each match
	// task gets one partition of the larger side and all of the smaller.
	SplitBroadcast SplitMode = "broadcast"
	// SplitSingle: the query cannot be shown to be partition-safe (an
	// aggregate over a whole source, a set operation, ...); one executor
	// runs the whole job.
	SplitSingle SplitMode = "single"
)

// SplitPlan is how a job is split, decided by parsing its match_sql.
type SplitPlan struct {
	Mode SplitMode `json:"mode"`
	// Reason says why the mode was chosen, for logs.
	Reason string `json:"reason,omitempty"`
	// Hash holds, per source (left, right), the SQL expression over that
	// source's columns whose value modulo the partition count picks a row's
	// partition. In partition mode the two expressions hash equal key values
	// equally.
	Hash [2]string `json:"hash,omitempty"`
	// Direct is set, per source, when the source is Parquet files that
	// every executor reads in place: its partitions are read straight from
	// the files (filtered by Hash modulo the partition count) instead of
	// being staged. Rows then holds that source's row count (after its
	// filters); staged sources report theirs when staged.
	Direct [2]bool  `json:"direct,omitempty"`
	Rows   [2]int64 `json:"rows,omitempty"`
	// Splits holds, per source, the splits of a staged source that the
	// plan cut into parts (local CSV files), one stage task each; empty
	// for a source staged whole or split by the coordinator (Postgres).
	Splits [2][]SourceSplit `json:"splits,omitempty"`
	// Spec is the match and how its result identifies source rows.
	Spec MatchSpec `json:"spec"`
}

// StagedColumn is a column of a staged Parquet file with the engine type it
// has in the source table, so a reader restores that type exactly.
type StagedColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// StagedSet is a set of Parquet files of one table, or, when Source is
// set, a partition read straight from the job's source.
type StagedSet struct {
	Files   []string       `json:"files"`
	Columns []StagedColumn `json:"columns"`
	// Source, when set, replaces Files and Columns: the rows are read from
	// the job's own source (Parquet files read in place).
	Source *SourcePartition `json:"source,omitempty"`
}

// SourcePartition is one partition of a source read in place: its rows
// whose Hash modulo Parts is Partition, the expression and bucket staging
// would use, so a row is in the same partition either way. Partition -1
// reads the whole source (a broadcast side).
type SourcePartition struct {
	Hash      string `json:"hash"`
	Parts     int    `json:"parts"`
	Partition int    `json:"partition"`
}

// StagedSource is what staging one source produced: Parts folders under its
// directory, "p0" ... "p<Parts-1>", each holding at least one Parquet file.
type StagedSource struct {
	Rows    int64          `json:"rows"`
	Bytes   int64          `json:"bytes"`
	Columns []StagedColumn `json:"columns"`
}

// MergeSpec tells the merge which partial results to combine.
type MergeSpec struct {
	Spec MatchSpec `json:"spec"`
	// Matched are the partial matched files, one per partition.
	Matched []string `json:"matched"`
	// Unmatched holds, per side, the partial unmatched files; nil for the
	// side that was broadcast, whose unmatched rows are computed against
	// all matches instead.
	Unmatched [2][]string `json:"unmatched"`
	// Broadcast is the broadcast side (0 or 1) and its staged files; -1 when
	// nothing was broadcast.
	Broadcast      int       `json:"broadcast"`
	BroadcastFiles StagedSet `json:"broadcast_files"`
}

// SplitSession is a Session that can take part in a distributed job. The
// duckdb engine's sessions implement it.
type SplitSession interface {
	Session
	// PlanSplit parses match_sql (after both sources are attached) and
	// decides how the job can be split.
	PlanSplit(ctx context.Context, job *Job) (SplitPlan, error)
	// WritePartitions writes the loaded rows of alias into parts folders
	// dir/p<k>, choosing each row's folder by hashExpr modulo parts; every
	// folder gets a file, empty or not.
	WritePartitions(ctx context.Context, alias, hashExpr string, parts int, dir string) (StagedSource, error)
	// SplitFiles cuts the attached file source alias into up to n splits
	// that stage tasks read with AttachSplit, or returns nil when it
	// cannot or need not be split.
	SplitFiles(ctx context.Context, alias string, n int) ([]SourceSplit, error)
	// AttachSplit declares alias as one split made by SplitFiles, with
	// filters, as Attach does for the whole source.
	AttachSplit(ctx context.Context, alias string, filters []Filter, split SourceSplit) ([]Column, error)
	// AttachPartition attaches src as alias with its filters, as Attach
	// does, keeping only the rows of one partition. It fails when src
	// cannot be read in place.
	AttachPartition(ctx context.Context, alias string, src Source, filters []Filter, part SourcePartition) error
	// AttachStaged declares and loads alias from staged files, restoring
	// the source's column types, and returns its row count.
	AttachStaged(ctx context.Context, alias string, in StagedSet) (int64, error)
	// MergeResults combines partial results into the three result files in
	// dir and returns their sizes. A broadcast side read in place
	// (BroadcastFiles.Source set) must already be attached.
	MergeResults(ctx context.Context, m MergeSpec, dir string) (Counts, error)
}

// PlanSplit validates job, attaches its sources (reading no rows) and
// decides how to split it; a staged source of files (local CSV, S3
// Parquet) is cut into up to splits parts for as many stage tasks.
func (r *Runner) PlanSplit(ctx context.Context, job *Job, splits int) (SplitPlan, error) {
	fail := func(err error) (SplitPlan, error) { return SplitPlan{}, &StageError{Stage: StageValidating, Err: err} }
	srcs, _, err := r.Prepare(ctx, job, false)
	if err != nil {
		return fail(err)
	}
	defer closeAll(srcs[:])
	checked := srcs
	for i, src := range srcs {
		// Stage tasks fetch such a source in splits: the plan needs only
		// its columns.
		if sf, ok := src.(SplittableFetch); ok {
			checked[i] = schemaOnlySource{sf}
		}
	}
	sess, err := r.Engine.NewSession(ctx, sessionPaths(srcs[:])...)
	if err != nil {
		return fail(fmt.Errorf("start engine: %w", err))
	}
	defer sess.Close()
	spec, err := r.check(ctx, sess, job, checked)
	if err != nil {
		return fail(err)
	}
	ss, ok := sess.(SplitSession)
	if !ok {
		return SplitPlan{Mode: SplitSingle, Reason: "the engine cannot split jobs", Spec: spec}, nil
	}
	plan, err := ss.PlanSplit(ctx, job)
	if err != nil {
		return fail(err)
	}
	plan.Spec = spec
	if plan.Mode != SplitSingle {
		for i, src := range srcs {
			if !readInPlace(src) {
				alias := job.Sources[i].Alias
				if sf, ok := src.(SplittableFetch); ok {
					plan.Splits[i], err = sf.SplitFetch(ctx, splits)
				} else {
					plan.Splits[i], err = ss.SplitFiles(ctx, alias, splits)
				}
				if err != nil {
					return fail(fmt.Errorf("split source %q: %w", alias, err))
				}
				if len(plan.Splits[i]) < 2 {
					plan.Splits[i] = nil
				}
				continue
			}
			// A view over the files: Parquet footers hold the row count,
			// so this reads no column unless the source has filters.
			n, err := sess.Load(ctx, job.Sources[i].Alias, nil)
			if err != nil {
				return fail(fmt.Errorf("count rows of %q: %w", job.Sources[i].Alias, err))
			}
			plan.Direct[i], plan.Rows[i] = true, n
		}
	}
	return plan, nil
}

// readInPlace reports whether a source is Parquet files that each match task
// can read its partition from, so that staging it can be skipped. Sources
// fetched first (S3), CSV files and databases are staged.
func readInPlace(src Source) bool {
	fs, ok := src.(*FileSource)
	return ok && fs.Format == FormatParquet
}

// attachSource opens side of job and attaches the given part of it.
func (r *Runner) attachSource(ctx context.Context, ss SplitSession, job *Job, side int, part SourcePartition) (func(), error) {
	spec := job.Sources[side]
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return nil, fmt.Errorf("read source %q (%s): %w", spec.Alias, RedactURI(spec.URI), err)
	}
	if !readInPlace(src) {
		src.Close()
		return nil, fmt.Errorf("source %q (%s) cannot be read in place", spec.Alias, RedactURI(spec.URI))
	}
	if err := ss.AttachPartition(ctx, spec.Alias, src, spec.Filters, part); err != nil {
		src.Close()
		return nil, fmt.Errorf("read source %q (%s): %w", spec.Alias, RedactURI(spec.URI), err)
	}
	return func() { src.Close() }, nil
}

// StageSpec says what one stage task reads and where it writes it.
type StageSpec struct {
	// Side is the source (0 left, 1 right); its rows go into Parts
	// partition folders under Dir, by Hash modulo Parts.
	Side  int    `json:"side"`
	Hash  string `json:"hash"`
	Parts int    `json:"parts"`
	Dir   string `json:"dir"`
	// Split, when set, is the one split this task reads: of a
	// SplittableSource (made by its Split) or of files (made by the plan's
	// SplitFiles). Otherwise the task reads the whole source.
	Split *SourceSplit `json:"split,omitempty"`
}

// StageSource reads source st.Side of job (all of it, or st.Split) and
// writes its rows into st.Parts partitions under st.Dir, by st.Hash. Dir is
// the task's own: a retried task first removes what an earlier attempt
// left there, and no other task writes to it.
func (r *Runner) StageSource(ctx context.Context, job *Job, st StageSpec) (StagedSource, error) {
	spec := job.Sources[st.Side]
	hashExpr, parts, dir := st.Hash, st.Parts, st.Dir
	fail := func(err error) (StagedSource, error) {
		return StagedSource{}, &StageError{Stage: StageStaging, Err: fmt.Errorf("read source %q (%s): %w", spec.Alias, RedactURI(spec.URI), err)}
	}
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	ss, err := r.splitSession(ctx, sessionPaths([]Source{src}, asFolder(dir))...)
	if err != nil {
		return fail(err)
	}
	defer ss.Close()
	rows, isRows := src.(SplittableSource)
	fetch, isFetch := src.(SplittableFetch)
	switch {
	case st.Split == nil:
		_, err = ss.Attach(ctx, spec.Alias, src, spec.Filters)
	case isRows:
		_, err = ss.Attach(ctx, spec.Alias, splitRowSource{SplittableSource: rows, split: *st.Split}, spec.Filters)
	case isFetch:
		_, err = ss.Attach(ctx, spec.Alias, splitFetchSource{SplittableFetch: fetch, split: *st.Split}, spec.Filters)
	default:
		_, err = ss.AttachSplit(ctx, spec.Alias, spec.Filters, *st.Split)
	}
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	n, err := ss.Load(ctx, spec.Alias, nil)
	if err != nil {
		return fail(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fail(err)
	}
	out, err := ss.WritePartitions(ctx, spec.Alias, hashExpr, parts, dir)
	if err != nil {
		return fail(fmt.Errorf("write partitions: %w", err))
	}
	if out.Rows != n {
		return fail(fmt.Errorf("staged %d rows but wrote %d", n, out.Rows))
	}
	r.logger().Info("source partitioned", "run_id", job.RunID, "alias", spec.Alias, "rows", n, "parts", parts, "split", st.Split != nil, "bytes", out.Bytes, "elapsed", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// MatchPartition runs the match over one partition pair and writes the
// partial results into dir.
func (r *Runner) MatchPartition(ctx context.Context, job *Job, spec MatchSpec, in [2]StagedSet, dir string) (Counts, error) {
	fail := func(err error) (Counts, error) { return Counts{}, &StageError{Stage: StageMatching, Err: err} }
	allowed := append(r.jobPaths(ctx, job), asFolder(dir))
	for _, set := range in {
		allowed = append(allowed, set.Files...)
	}
	ss, err := r.splitSession(ctx, allowed...)
	if err != nil {
		return fail(err)
	}
	defer ss.Close()
	for i, s := range job.Sources {
		if in[i].Source != nil {
			done, err := r.attachSource(ctx, ss, job, i, *in[i].Source)
			if err != nil {
				return fail(fmt.Errorf("load partition of %q: %w", s.Alias, err))
			}
			defer done()
			continue
		}
		if _, err := ss.AttachStaged(ctx, s.Alias, in[i]); err != nil {
			return fail(fmt.Errorf("load partition of %q: %w", s.Alias, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fail(err)
	}
	// Mkdir, not MkdirAll: if the job's staging folder is gone, the job
	// ended and this task must not recreate it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fail(err)
	}
	c, err := ss.Reconcile(ctx, spec, dir, nil)
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// MergeResults combines the partial results into job's output, writes
// summary.json and publishes them, as Runner.Run does at its end. counts are
// the source row counts; start is when the job started, for elapsed_ms.
func (r *Runner) MergeResults(ctx context.Context, job *Job, m MergeSpec, counts [2]int64, start time.Time) (*Result, error) {
	fail := func(err error) (*Result, error) { return nil, &StageError{Stage: StageWriting, Err: err} }
	out, err := r.Outputs.Open(ctx, job.OutputPath)
	if err != nil {
		return fail(err)
	}
	// The output's folder exists before the session starts, so the
	// session's database may write into it directly.
	dir, err := out.Prepare(ctx)
	if err != nil {
		return fail(fmt.Errorf("prepare output %s: %w", RedactURI(job.OutputPath), err))
	}
	published := false
	defer func() {
		if !published {
			out.Discard(dir)
		}
	}()
	allowed := append(r.jobPaths(ctx, job), asFolder(dir))
	for _, files := range [][]string{m.Matched, m.Unmatched[0], m.Unmatched[1], m.BroadcastFiles.Files} {
		allowed = append(allowed, files...)
	}
	ss, err := r.splitSession(ctx, allowed...)
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
	res, err := publishResult(ctx, job, out, dir, c, counts, start)
	if err != nil {
		return fail(err)
	}
	published = true
	return res, nil
}

// jobPaths lists the files of job's file sources, for a session that
// reads them in place.
func (r *Runner) jobPaths(ctx context.Context, job *Job) []string {
	var srcs []Source
	for _, spec := range job.Sources {
		if src, err := r.Sources.Open(ctx, spec.URI); err == nil {
			srcs = append(srcs, src)
		}
	}
	defer closeAll(srcs)
	return sessionPaths(srcs)
}

// splitSession starts a session that may read allowed (see
// Engine.NewSession).
func (r *Runner) splitSession(ctx context.Context, allowed ...string) (SplitSession, error) {
	sess, err := r.Engine.NewSession(ctx, allowed...)
	if err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	ss, ok := sess.(SplitSession)
	if !ok {
		sess.Close()
		return nil, fmt.Errorf("engine session %T cannot run distributed tasks", sess)
	}
	return ss, nil
}

// ExecutorInfo describes a live executor, as GET /api/cluster lists it.
type ExecutorInfo struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Running is the number of tasks it runs now, MaxTasks how many it may.
	Running  int    `json:"running"`
	MaxTasks int    `json:"max_tasks"`
	Version  string `json:"version,omitempty"`
}

// PartitionFiles lists the staged Parquet files of partition p of a source
// staged in the local folder dir, or of every partition when p is negative.
// StagedFiles does the same through a Staging.
func PartitionFiles(dir string, p int) ([]string, error) {
	pattern := filepath.FromSlash(partitionPattern(dir, p))
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no staged files match %s", pattern)
	}
	return files, nil
}
