package distributed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kalla-dev/kalla"
)

// StageSpec says what one stage task reads and where it writes it.
type StageSpec struct {
	// Side is the source (0 left, 1 right); its rows go into Parts
	// partition folders under Dir, by Hash modulo Parts.
	Side  int    `json:"side"`
	Hash  string `json:"hash"`
	Parts int    `json:"parts"`
	Dir   string `json:"dir"`
	// Split, when set, is the one split this task reads (made by
	// Runner.Split or by the plan). Otherwise the task reads the whole
	// source.
	Split *kalla.SourceSplit `json:"split,omitempty"`
}

// StagedColumn is a column of a staged Parquet file with the engine type it
// has in the source table, so a reader restores that type exactly.
type StagedColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// StagedSource is what staging one source produced: Parts folders under its
// directory (see PartitionFolder), each holding at least one Parquet file.
type StagedSource struct {
	Rows    int64          `json:"rows"`
	Bytes   int64          `json:"bytes"`
	Columns []StagedColumn `json:"columns"`
}

// Stage reads source st.Side of job (all of it, or st.Split) and writes its
// rows into st.Parts partitions under st.Dir, by st.Hash. Dir is the task's
// own: a retried task first removes what an earlier attempt left there,
// and no other task writes to it.
func (r *Runner) Stage(ctx context.Context, job *kalla.Job, st StageSpec) (StagedSource, error) {
	spec := job.Sources[st.Side]
	fail := func(err error) (StagedSource, error) {
		return StagedSource{}, &kalla.StageError{Stage: kalla.StageStaging, Err: fmt.Errorf("read source %q (%s): %w", spec.Alias, kalla.RedactURI(spec.URI), err)}
	}
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	ss, err := r.splitSession(ctx, []kalla.Source{src}, asFolder(st.Dir))
	if err != nil {
		return fail(err)
	}
	defer ss.Close()
	split := kalla.Whole
	if st.Split != nil {
		split = *st.Split
	}
	_, err = ss.Attach(ctx, spec.Alias, src, split, spec.Filters)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	n, err := ss.Load(ctx, spec.Alias, nil)
	if err != nil {
		return fail(err)
	}
	if err := os.RemoveAll(st.Dir); err != nil {
		return fail(err)
	}
	out, err := ss.WritePartitions(ctx, spec.Alias, st.Hash, st.Parts, st.Dir)
	if err != nil {
		return fail(fmt.Errorf("write partitions: %w", err))
	}
	if out.Rows != n {
		return fail(fmt.Errorf("staged %d rows but wrote %d", n, out.Rows))
	}
	r.Log().Info("source partitioned", "run_id", job.RunID, "alias", spec.Alias, "rows", n, "parts", st.Parts, "split", st.Split != nil, "bytes", out.Bytes, "elapsed", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// Split splits source side of job into at most n splits for as many stage
// tasks; the coordinator calls it for a source whose splits it must hold
// (SplitPlan.Coordinate). It returns nil when the source cannot be split or is too small to
// be worth it (fewer than two splits); the caller then stages it whole.
// Otherwise the caller must Release the result when every split is staged
// (or the job ended): that also closes the source.
func (r *Runner) Split(ctx context.Context, job *kalla.Job, side, n int) (*kalla.SourceSplits, error) {
	spec := job.Sources[side]
	fail := func(err error) (*kalla.SourceSplits, error) {
		err = fmt.Errorf("split source %q (%s): %w", spec.Alias, kalla.RedactURI(spec.URI), err)
		if kalla.IsValidation(err) {
			return nil, err
		}
		return nil, &kalla.StageError{Stage: kalla.StageStaging, Err: err}
	}
	if n < 2 {
		return nil, nil
	}
	src, err := r.Sources.Open(ctx, spec.URI)
	if err != nil {
		return fail(err)
	}
	splits, err := src.Split(ctx, spec.Filters, n)
	if err != nil {
		src.Close()
		return fail(err)
	}
	if len(splits.Splits) < 2 {
		if err := errors.Join(splits.Release(), src.Close()); err != nil {
			r.Log().Warn("release source split failed", "alias", spec.Alias, "err", err)
		}
		return nil, nil
	}
	// Releasing the splits also closes the source they came from.
	return kalla.NewSourceSplits(splits.Splits, func() error {
		return errors.Join(splits.Release(), src.Close())
	}), nil
}
