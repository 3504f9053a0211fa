package kalla

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// CarryOver makes a job take up the open items of a previous run: the rows
// of its unmatched_left/right.parquet join today's sources, with lineage
// columns saying since when each row is open (see docs/exceptions.md).
type CarryOver struct {
	// From is the previous run's output_path (a local folder or
	// s3://bucket/prefix); its summary.json must exist. Empty starts a
	// chain: nothing is carried, but the rows get their lineage columns,
	// so that the next run can carry them.
	From string `json:"from"`
	// MaxAgeDays, if set, sends rows seen in an earlier run whose age
	// exceeds it to expired_{left,right}.parquet instead of matching them.
	MaxAgeDays *int `json:"max_age_days,omitempty"`
	// AgeFrom names a DATE or TIMESTAMP column the age is counted from, on
	// the sides that have it; the others age from first seen.
	AgeFrom string `json:"age_from,omitempty"`
	// AsOf (YYYY-MM-DD) is the day the run is on; empty means the day
	// (UTC) the run starts. It is not fixed at submission: the scheduler
	// compares a resubmitted job with the stored one, and a client's
	// retry after midnight must still be the same job.
	AsOf string `json:"as_of,omitempty"`
}

// The lineage columns every row of a carry-over job's sources gets.
const (
	FirstSeenRunColumn = ReservedPrefix + "first_seen_run"
	FirstSeenAtColumn  = ReservedPrefix + "first_seen_at"
	RunsOpenColumn     = ReservedPrefix + "runs_open"
	AgeDaysColumn      = ReservedPrefix + "age_days"
)

// LineageColumns are the lineage columns, in the order they are added.
var LineageColumns = []string{FirstSeenRunColumn, FirstSeenAtColumn, RunsOpenColumn, AgeDaysColumn}

// The expired files of a carry-over job with max_age_days.
const (
	ExpiredLeftFile  = "expired_left.parquet"
	ExpiredRightFile = "expired_right.parquet"
)

// asOfLayout is the form of CarryOver.AsOf.
const asOfLayout = "2006-01-02"

// validate checks the fields of c that need no I/O.
func (c *CarryOver) validate() error {
	if c.From != "" && strings.TrimSpace(c.From) == "" {
		return Invalid("carry_over.from", "is blank: give the output_path of the previous run, or leave it out on the first run of a chain")
	}
	if c.MaxAgeDays != nil && *c.MaxAgeDays < 0 {
		return Invalid("carry_over.max_age_days", "must be 0 or more, got %d", *c.MaxAgeDays)
	}
	if c.AgeFrom != "" && strings.HasPrefix(strings.ToLower(c.AgeFrom), ReservedPrefix) {
		return Invalid("carry_over.age_from", "%q is a lineage column: name a DATE or TIMESTAMP column of a source (without age_from, rows age from first seen)", c.AgeFrom)
	}
	if c.AsOf != "" {
		if _, err := time.Parse(asOfLayout, c.AsOf); err != nil {
			return Invalid("carry_over.as_of", "%q is not a date of the form YYYY-MM-DD", c.AsOf)
		}
	}
	return nil
}

// CarrySpec is what the engine needs to carry one side's open items.
type CarrySpec struct {
	// Side is "left" or "right", for messages; File the carried file name.
	Side, File string
	// RunID is today's run, the first_seen_run of rows first seen today.
	RunID string
	// AsOf is the day the run is on (YYYY-MM-DD).
	AsOf string
	// Keys are the side's primary-key columns: a key both carried and in
	// today's source is one row, today's.
	Keys []string
	// AgeFrom is the side's column the age counts from; "" for first seen.
	AgeFrom string
	// MaxAgeDays bounds the age of rows seen before today; nil for none.
	MaxAgeDays *int
	// Part, when set, keeps only the carried rows of one partition of a
	// split job (see CarryPartition).
	Part *CarryPart
}

// CarryPart is one partition of a split carry-over job: the carried rows
// whose Hash (an SQL expression over today's columns, the one the job's
// rows are partitioned by) modulo Parts is Partition.
type CarryPart struct {
	Hash             string
	Parts, Partition int
}

// CarriedSide is what carry-over did on one side.
type CarriedSide struct {
	Carried, Cleared, Replaced, Expired int64
	// Ageing is that of the side's unmatched rows; nil in a dry run.
	Ageing *AgeBuckets
}

// Carrier is a Session that carries a previous run's open items into a
// source. The duckdb engine's sessions are Carriers.
type Carrier interface {
	// Carry joins the rows of carried (the previous run's unmatched file
	// of the side) to the attached alias, adds the lineage columns to
	// every row, and sets aside the expired ones. It is called after
	// Attach, before the match is bound. A carried column missing, extra
	// or of a type that does not hold today's values exactly is a
	// *ValidationError on carry_over.from.
	Carry(ctx context.Context, alias string, carried Source, spec CarrySpec) error
	// CarryLoaded is called once the rows of alias are loaded, before
	// Reconcile: the rows seen in an earlier run are known from then on.
	CarryLoaded(ctx context.Context, alias string) error
	// CarryCounts is called after Reconcile wrote the unmatched files into
	// dir: it writes the side's expired file there (when max_age_days is
	// set) and counts what carry-over did. With dir empty (a dry run) it
	// writes nothing, and Cleared and Ageing are not known.
	CarryCounts(ctx context.Context, alias, dir string) (CarriedSide, error)
}

// CarryOverCounts is the carry_over object of summary.json: per side, how
// many rows came from the previous run (carried), how many of them were
// matched today (cleared), were sent again today and replaced by today's
// row (replaced), and were too old (expired).
type CarryOverCounts struct {
	FromRunID string    `json:"from_run_id"`
	AsOf      string    `json:"as_of"`
	Carried   SideCount `json:"carried"`
	Cleared   SideCount `json:"cleared"`
	Replaced  SideCount `json:"replaced"`
	Expired   SideCount `json:"expired"`
}

// SideCount is a count per side.
type SideCount struct {
	Left  int64 `json:"left"`
	Right int64 `json:"right"`
}

// Ageing is the age of the unmatched rows of each side.
type Ageing struct {
	Left  AgeBuckets `json:"left"`
	Right AgeBuckets `json:"right"`
}

// AgeBuckets counts rows by age in days (_kalla_age_days).
type AgeBuckets struct {
	Days0      int64 `json:"0d"`
	Days1to7   int64 `json:"1-7d"`
	Days8to30  int64 `json:"8-30d"`
	Days31to90 int64 `json:"31-90d"`
	Over90     int64 `json:">90d"`
	// OldestDays is the largest age; nil when the side has no unmatched row.
	OldestDays *int64 `json:"oldest_days"`
}

// carried is a previous run opened for carry-over.
type carried struct {
	runID string
	srcs  [2]Source
}

func (c *carried) Close() { CloseSources(c.srcs[:]) }

// openCarried checks that job's carry_over.from is a complete result (its
// summary.json exists and names a run) and opens its two unmatched files as
// sources, through the same registry and allow-lists as job sources. The
// caller closes the result.
func (r *Runner) openCarried(ctx context.Context, job *Job) (*carried, error) {
	co := job.CarryOver
	out, err := r.Outputs.Open(ctx, co.From)
	if err != nil {
		return nil, prefixField("carry_over.from", unfield(err))
	}
	reader, ok := out.(ResultReader)
	if !ok {
		return nil, Invalid("carry_over.from", "%s: results there cannot be read back", RedactURI(co.From))
	}
	data, err := reader.ReadResult(ctx, SummaryFile)
	if err != nil {
		if IsValidation(err) {
			return nil, Invalid("carry_over.from", "%s has no readable %s, so it is not a complete result: %v", RedactURI(co.From), SummaryFile, unfield(err))
		}
		return nil, fmt.Errorf("read %s of carry_over.from: %w", SummaryFile, err)
	}
	var prev Result
	if err := json.Unmarshal(data, &prev); err != nil || prev.RunID == "" {
		return nil, Invalid("carry_over.from", "%s in %s is not a Kalla summary (no run_id)", SummaryFile, RedactURI(co.From))
	}
	if prev.DryRun {
		return nil, Invalid("carry_over.from", "%s is the summary of a dry run, which wrote no unmatched files", SummaryFile)
	}
	c := &carried{runID: prev.RunID}
	for i, name := range [2]string{UnmatchedLeftFile, UnmatchedRightFile} {
		src, err := r.Sources.Open(ctx, joinLocation(co.From, name))
		if err != nil {
			c.Close()
			return nil, prefixField("carry_over.from", unfield(err))
		}
		c.srcs[i] = src
	}
	return c, nil
}

// ResultReader is an Output that can read back a file of the result
// published there; carry-over reads the previous run's summary.json with it.
// A missing file is a *ValidationError.
type ResultReader interface {
	ReadResult(ctx context.Context, name string) ([]byte, error)
}

// joinLocation names the file name inside the folder loc (a path or a URI).
func joinLocation(loc, name string) string {
	if Scheme(loc) == "file" {
		return filepath.Join(strings.TrimPrefix(loc, "file://"), name)
	}
	return strings.TrimRight(loc, "/") + "/" + name
}

// unfield drops the field of a *ValidationError, which an adapter names
// for a job field ("uri", "output_path") that is not the one at fault.
func unfield(err error) error {
	if v, ok := err.(*ValidationError); ok {
		return &ValidationError{Message: v.Message}
	}
	return err
}

// CarryPaths lists the local folder a carry-over job reads, for its engine
// session's allow-list; none for S3, whose files are fetched.
func CarryPaths(job *Job) []string {
	if job.CarryOver == nil || job.CarryOver.From == "" || Scheme(job.CarryOver.From) != "file" {
		return nil
	}
	dir, err := filepath.Abs(strings.TrimPrefix(job.CarryOver.From, "file://"))
	if err != nil {
		return nil
	}
	return []string{dir + string(filepath.Separator)}
}

// fixAsOf writes the default as_of (today, UTC) into job as its run
// starts, so that every part of the run counts to the same day.
func fixAsOf(job *Job) {
	if job.CarryOver != nil && job.CarryOver.AsOf == "" {
		job.CarryOver.AsOf = time.Now().UTC().Format(asOfLayout)
	}
}

// bindCarryOver carries the previous run's open items into both attached
// sources of job (whose columns are cols).
func (r *Runner) bindCarryOver(ctx context.Context, sess Session, job *Job, cols [2][]Column) (string, error) {
	return r.carryInto(ctx, sess, job, cols, [2]*CarryPart{})
}

// CarryPartition carries the previous run's open items into both attached
// sources of job, as a local run does, keeping on each side only the
// carried rows of parts[side]: the match task of one partition of a split
// job carries its own partition. The job must be partitioned on a
// primary-key column of each side, so that a key's carried row and today's
// row are always in one partition, and its as_of must be the plan's, so
// that every task ages rows to the same day. It returns the run id of the
// previous run. CarryLoaded and CarryCounts follow, as in a local run.
func (r *Runner) CarryPartition(ctx context.Context, sess Session, job *Job, parts [2]*CarryPart) (string, error) {
	if job.CarryOver == nil || job.CarryOver.AsOf == "" {
		return "", errors.New("a partition of a carry-over job needs the as_of its plan fixed")
	}
	var cols [2][]Column
	for side, s := range job.Sources {
		if parts[side] == nil {
			return "", fmt.Errorf("no partition of source %q to carry into", s.Alias)
		}
		var err error
		if cols[side], err = sess.QueryColumns(ctx, "SELECT * FROM "+quoteIdent(s.Alias)); err != nil {
			return "", fmt.Errorf("read the columns of %q: %w", s.Alias, err)
		}
	}
	return r.carryInto(ctx, sess, job, cols, parts)
}

// carryInto is bindCarryOver keeping only the carried rows of parts (nil
// sides keep all).
func (r *Runner) carryInto(ctx context.Context, sess Session, job *Job, cols [2][]Column, parts [2]*CarryPart) (string, error) {
	co := job.CarryOver
	carrier, ok := sess.(Carrier)
	if !ok {
		return "", Invalid("carry_over", "the engine cannot carry items over")
	}
	fixAsOf(job)
	var ageFrom [2]string
	if co.AgeFrom != "" {
		for side := range cols {
			i := findColumn(cols[side], co.AgeFrom)
			if i < 0 {
				continue
			}
			// A VARCHAR column of a CSV with no value today takes the
			// carried type (Carry): it is checked again once carried.
			if err := checkAgeFrom(job, side, cols[side][i].Type); err != nil && cols[side][i].Type.Kind != TypeVarchar {
				return "", err
			}
			ageFrom[side] = cols[side][i].Name
		}
		if ageFrom[0] == "" && ageFrom[1] == "" {
			return "", Invalid("carry_over.age_from", "column %q is in neither source (left: %s; right: %s)", co.AgeFrom, ColumnNames(cols[0]), ColumnNames(cols[1]))
		}
	}
	for side := range cols {
		for _, c := range cols[side] {
			for _, l := range LineageColumns {
				if strings.EqualFold(c.Name, l) {
					return "", Invalid(fmt.Sprintf("sources[%d]", side), "source %q has a column %q, which carry-over adds itself: feed the previous run through carry_over.from, not as a source", job.Sources[side].Alias, c.Name)
				}
			}
		}
	}
	prev := &carried{}
	if co.From != "" {
		var err error
		if prev, err = r.openCarried(ctx, job); err != nil {
			return "", err
		}
		defer prev.Close()
	}
	for side, s := range job.Sources {
		spec := CarrySpec{
			Side: [2]string{"left", "right"}[side], File: [2]string{UnmatchedLeftFile, UnmatchedRightFile}[side],
			RunID: job.RunID, AsOf: co.AsOf, Keys: job.KeysOf(s.Alias), AgeFrom: ageFrom[side], MaxAgeDays: co.MaxAgeDays,
			Part: parts[side],
		}
		if err := carrier.Carry(ctx, s.Alias, prev.srcs[side], spec); err != nil {
			if IsValidation(err) {
				return "", prefixField("carry_over.from", unfield(err))
			}
			return "", fmt.Errorf("carry over the open items of %q: %w", s.Alias, err)
		}
	}
	for side, s := range job.Sources {
		if ageFrom[side] == "" {
			continue
		}
		q := "SELECT " + quoteIdent(ageFrom[side]) + " FROM " + quoteIdent(s.Alias)
		got, err := sess.QueryColumns(ctx, q)
		if err != nil {
			return "", fmt.Errorf("read the type of carry_over.age_from in %q: %w", s.Alias, err)
		}
		if err := checkAgeFrom(job, side, got[0].Type); err != nil {
			return "", err
		}
	}
	return prev.runID, nil
}

// checkAgeFrom refuses a carry_over.age_from column of source side whose
// type typ is not a date or timestamp.
func checkAgeFrom(job *Job, side int, typ Type) error {
	switch typ.Kind {
	case TypeDate, TypeTimestamp, TypeTimestampTZ:
		return nil
	}
	return Invalid("carry_over.age_from", "column %q of source %q is %s: it must be a DATE or TIMESTAMP", job.CarryOver.AgeFrom, job.Sources[side].Alias, typ.SQL())
}

// CarryLoaded tells the engine that job's sources, carried into by a
// local run or by CarryPartition, are loaded.
func CarryLoaded(ctx context.Context, sess Session, job *Job) error {
	carrier, ok := sess.(Carrier)
	if !ok {
		return fmt.Errorf("the engine cannot carry items over")
	}
	for _, s := range job.Sources {
		if err := carrier.CarryLoaded(ctx, s.Alias); err != nil {
			return fmt.Errorf("carry over the open items of %q: %w", s.Alias, err)
		}
	}
	return nil
}

// CarryCounts gathers what carry-over did on both sides, in a local run or
// in one partition of a split job, once the result files are in dir, and
// writes the expired files there.
func CarryCounts(ctx context.Context, sess Session, job *Job, fromRunID, dir string) (*CarryOverCounts, *Ageing, error) {
	carrier, ok := sess.(Carrier)
	if !ok {
		return nil, nil, fmt.Errorf("the engine cannot carry items over")
	}
	co := &CarryOverCounts{FromRunID: fromRunID, AsOf: job.CarryOver.AsOf}
	var ages [2]*AgeBuckets
	for side, s := range job.Sources {
		c, err := carrier.CarryCounts(ctx, s.Alias, dir)
		if err != nil {
			return nil, nil, fmt.Errorf("count the carried items of %q: %w", s.Alias, err)
		}
		for _, p := range []struct {
			n   int64
			dst *SideCount
		}{{c.Carried, &co.Carried}, {c.Cleared, &co.Cleared}, {c.Replaced, &co.Replaced}, {c.Expired, &co.Expired}} {
			if side == 0 {
				p.dst.Left = p.n
			} else {
				p.dst.Right = p.n
			}
		}
		ages[side] = c.Ageing
	}
	if ages[0] == nil || ages[1] == nil {
		return co, nil, nil
	}
	return co, &Ageing{Left: *ages[0], Right: *ages[1]}, nil
}

// Add adds the counts of o, another partition of the same job, to c and
// returns the sum; a nil c is none.
func (c *CarryOverCounts) Add(o *CarryOverCounts) *CarryOverCounts {
	if o == nil {
		return c
	}
	if c == nil {
		sum := *o
		return &sum
	}
	for _, p := range [][2]*SideCount{{&c.Carried, &o.Carried}, {&c.Cleared, &o.Cleared}, {&c.Replaced, &o.Replaced}, {&c.Expired, &o.Expired}} {
		p[0].Left += p[1].Left
		p[0].Right += p[1].Right
	}
	return c
}

// Add adds the ageing of o, another partition of the same job, to a and
// returns the sum: bucket counts add up, the oldest is the larger. A nil a
// is none.
func (a *Ageing) Add(o *Ageing) *Ageing {
	if o == nil {
		return a
	}
	if a == nil {
		a = &Ageing{}
	}
	a.Left.add(o.Left)
	a.Right.add(o.Right)
	return a
}

func (b *AgeBuckets) add(o AgeBuckets) {
	b.Days0 += o.Days0
	b.Days1to7 += o.Days1to7
	b.Days8to30 += o.Days8to30
	b.Days31to90 += o.Days31to90
	b.Over90 += o.Over90
	if o.OldestDays != nil && (b.OldestDays == nil || *o.OldestDays > *b.OldestDays) {
		oldest := *o.OldestDays
		b.OldestDays = &oldest
	}
}

// checkCarryOver checks, when job carries items over, that carry_over.from
// is a complete result the job may read.
func (r *Runner) checkCarryOver(ctx context.Context, job *Job) error {
	if job.CarryOver == nil || job.CarryOver.From == "" {
		return nil
	}
	prev, err := r.openCarried(ctx, job)
	if err != nil {
		return err
	}
	prev.Close()
	return nil
}
