package distributed

import (
	"context"
	"fmt"
	"os"

	"github.com/kalla-dev/kalla"
)

// PartitionSpec says what one match task matches: partition Partition of
// Parts, each side read from its stage tasks' folders or in place, the
// partial results written into Dir.
type PartitionSpec struct {
	Partition int    `json:"partition"`
	Parts     int    `json:"parts"`
	Dir       string `json:"dir"`
	// Spec is the plan's match spec.
	Spec kalla.MatchSpec `json:"spec"`
	// Broadcast is the side every match task reads whole; -1 for none.
	Broadcast int              `json:"broadcast"`
	Sides     [2]PartitionSide `json:"sides"`
}

// PartitionSide is where a match task finds one side of its partition.
type PartitionSide struct {
	// Direct is set when the source was not staged: the task reads its
	// partition from the source itself, by Hash modulo Parts. A staged
	// side of a carry-over job has its Hash too: the task carries the
	// previous run's rows of its partition by it.
	Direct bool   `json:"direct,omitempty"`
	Hash   string `json:"hash,omitempty"`
	// StageDirs are the folders of the side's stage tasks, and Columns the
	// staged columns with their types in the source.
	StageDirs []string       `json:"stage_dirs,omitempty"`
	Columns   []StagedColumn `json:"columns,omitempty"`
}

// StagedSet is a set of Parquet files of one table, or, when Source is
// set, a partition read straight from the job's source.
type StagedSet struct {
	Files   []string       `json:"files"`
	Columns []StagedColumn `json:"columns"`
	// Source, when set, replaces Files and Columns: the rows are read from
	// the job's own source (Parquet files read in place).
	Source *SourcePartition `json:"source,omitempty"`
	// Part is the partition the set holds, when its side has a hash: a
	// carry-over job's match task carries the previous run's rows of it.
	Part *SourcePartition `json:"part,omitempty"`
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

// Inputs finds the staged files of both sides of p in st and fetches them
// below scratch (see Staging.Fetch); a side read in place names its
// partition of the source instead.
func (p PartitionSpec) Inputs(ctx context.Context, st Staging, scratch string) ([2]StagedSet, error) {
	var in [2]StagedSet
	for side, s := range p.Sides {
		part := p.Partition
		if side == p.Broadcast {
			part = -1
		}
		var held *SourcePartition
		if s.Hash != "" && part >= 0 {
			held = &SourcePartition{Hash: s.Hash, Parts: p.Parts, Partition: part}
		}
		if s.Direct {
			in[side] = StagedSet{Source: &SourcePartition{Hash: s.Hash, Parts: p.Parts, Partition: part}, Part: held}
			continue
		}
		keys, err := StagedFiles(ctx, st, s.StageDirs, part)
		if err != nil {
			return in, err
		}
		files, err := st.Fetch(ctx, keys, scratch)
		if err != nil {
			return in, fmt.Errorf("fetch partition %d of source %d: %w", part, side, err)
		}
		in[side] = StagedSet{Files: files, Columns: s.Columns, Part: held}
	}
	return in, nil
}

// Match runs the match over one partition pair and writes the partial
// results into dir.
func (r *Runner) Match(ctx context.Context, job *kalla.Job, spec kalla.MatchSpec, in [2]StagedSet, dir string) (kalla.Counts, error) {
	fail := func(err error) (kalla.Counts, error) {
		return kalla.Counts{}, &kalla.StageError{Stage: kalla.StageMatching, Err: err}
	}
	allowed := append([]string{asFolder(dir)}, kalla.CarryPaths(job)...)
	for _, set := range in {
		allowed = append(allowed, set.Files...)
	}
	ss, err := r.session(ctx, job, allowed...)
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
	var from string
	if job.CarryOver != nil {
		var parts [2]*kalla.CarryPart
		for side, set := range in {
			if p := set.Part; p != nil {
				parts[side] = &kalla.CarryPart{Hash: p.Hash, Parts: p.Parts, Partition: p.Partition}
			}
		}
		if from, err = r.carry(ctx, ss, job, spec, parts); err != nil {
			return fail(err)
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
	if job.CarryOver != nil {
		if c.CarryOver, c.Ageing, err = kalla.CarryCounts(ctx, ss, job, from, dir); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// carry carries the previous run's open items of job's partition parts
// into the attached sides, as a local run does into its sources, and
// returns the previous run's id.
func (r *Runner) carry(ctx context.Context, ss Session, job *kalla.Job, spec kalla.MatchSpec, parts [2]*kalla.CarryPart) (string, error) {
	from, err := r.CarryPartition(ctx, ss, job, parts)
	if err != nil {
		return "", err
	}
	if from != spec.CarriedFrom {
		// The plan bound the rules to the previous run it read.
		return "", kalla.Invalid("carry_over.from", "now holds run %s, not run %s that the job was planned with: it changed while the job ran", from, spec.CarriedFrom)
	}
	if err := kalla.CarryLoaded(ctx, ss, job); err != nil {
		return "", err
	}
	return from, nil
}
