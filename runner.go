package kalla

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Runner carries out jobs: it validates a job, opens its sources and output,
// and drives an engine Session through staging, matching and writing.
type Runner struct {
	Engine  Engine
	Sources *Registry[Source]
	Outputs *Registry[Output]
	// CallbackHosts are the hosts a job's callback_url may name; nil
	// allows any but link-local (cloud metadata) addresses.
	CallbackHosts *AllowList
	Logger        *slog.Logger
	// StageDone, if set, receives the duration of each part of a job as it
	// ends: the staging of each source, then matching with the writing of
	// the result files. Benchmarks break a job's time down with it
	// (benchmarks/kallabench) instead of reading the log.
	StageDone func(StageTime)
}

// StageTime is how long one part of a job took.
type StageTime struct {
	Stage Stage
	// Source is the alias staged, for StageStaging.
	Source  string
	Elapsed time.Duration
}

// stageDone hands t to StageDone, if set.
func (r *Runner) stageDone(t StageTime) {
	if r.StageDone != nil {
		r.StageDone(t)
	}
}

// NewRunID returns a fresh run id, for callers (the CLI) whose job has none.
func NewRunID() string { return uuid.NewString() }

// Prepare validates job and opens its sources and output without reading
// them, so that a malformed job is rejected before it is accepted. The caller
// must close the returned sources.
func (r *Runner) Prepare(ctx context.Context, job *Job, requireRunID bool) (srcs [2]Source, out Output, err error) {
	if err := r.CheckJob(ctx, job, requireRunID); err != nil {
		return srcs, nil, err
	}
	if err := r.checkCarryOver(ctx, job); err != nil {
		return srcs, nil, err
	}
	if job.CallbackURL != "" {
		if err := r.CallbackHosts.CheckURL(ctx, job.CallbackURL); err != nil {
			return srcs, nil, Invalid("callback_url", "%v", err)
		}
	}
	for i, spec := range job.Sources {
		src, err := r.Sources.Open(ctx, spec.URI)
		if err != nil {
			CloseSources(srcs[:i])
			return srcs, nil, prefixField(fmt.Sprintf("sources[%d]", i), err)
		}
		srcs[i] = src
	}
	out, err = r.Outputs.Open(ctx, job.OutputPath)
	if err != nil {
		CloseSources(srcs[:])
		return srcs, nil, err
	}
	conf, err := r.openConfirmed(ctx, job)
	if err != nil {
		CloseSources(srcs[:])
		return srcs, nil, err
	}
	CloseSources([]Source{conf})
	return srcs, out, nil
}

// CheckJob validates job without opening anything: its fields, and its
// match_sql against the engine's SQL sandbox. Executors run it on every
// task they receive, as the scheduler and `kallad run` do through Prepare.
func (r *Runner) CheckJob(ctx context.Context, job *Job, requireRunID bool) error {
	if err := job.Validate(requireRunID); err != nil {
		return err
	}
	if r.Engine == nil {
		// A Runner that only validates fields (the HTTP package's tests);
		// one that runs jobs always has an engine, and checks.
		return nil
	}
	aliases := make([]string, len(job.Sources))
	for i, s := range job.Sources {
		aliases[i] = s.Alias
	}
	for i, rule := range job.RuleList() {
		if err := r.Engine.CheckSQL(ctx, rule.MatchSQL, aliases); err != nil {
			return Invalid(job.RuleField(i, "match_sql"), "%v", err)
		}
	}
	return nil
}

// NewSession starts an engine session that may read the files of the file
// sources among srcs (a file, or the folder a glob lists) and more: files,
// and folders ending in a slash (see Engine.NewSession).
func (r *Runner) NewSession(ctx context.Context, srcs []Source, more ...string) (Session, error) {
	sess, err := r.Engine.NewSession(ctx, sessionPaths(srcs, more...)...)
	if err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	return sess, nil
}

// sessionPaths lists what a job's engine session may read (see NewSession).
func sessionPaths(srcs []Source, more ...string) []string {
	var out []string
	for _, src := range srcs {
		fs := src.Local()
		if fs == nil {
			continue
		}
		p := fs.Pattern
		if i := strings.IndexAny(p, "*?["); i >= 0 {
			p = filepath.Dir(p[:i]+"x") + string(filepath.Separator)
		}
		out = append(out, p)
	}
	return append(out, more...)
}

// CloseSources closes the sources of srcs that are not nil, as the caller of
// Prepare must.
func CloseSources(srcs []Source) {
	for _, s := range srcs {
		if s != nil {
			s.Close()
		}
	}
}

// Run carries out job and returns its completion payload. progress, if not
// nil, receives progress reports; it must not block for long. Errors are
// *StageError values naming the stage that failed; user errors wrap a
// *ValidationError.
func (r *Runner) Run(ctx context.Context, job *Job, progress func(Progress)) (*Result, error) {
	return r.run(ctx, job, progress, false)
}

// DryRun carries out job as Run does, but writes nothing: the output is
// not opened, and the result (DryRun set, no output paths) carries the
// counts, per rule too, that Run would have written. It lets a user see
// what a new rule would catch before turning it on.
func (r *Runner) DryRun(ctx context.Context, job *Job, progress func(Progress)) (*Result, error) {
	return r.run(ctx, job, progress, true)
}

func (r *Runner) run(ctx context.Context, job *Job, progress func(Progress), dry bool) (*Result, error) {
	start := time.Now()
	if job.RunID == "" {
		job.RunID = NewRunID()
	}
	log := r.Log().With("run_id", job.RunID)
	report := func(p Progress) {
		p.RunID = job.RunID
		if progress != nil {
			progress(p)
		}
	}
	fail := func(stage Stage, err error) error {
		if te := JobTimeout(ctx); te != nil {
			return &StageError{Stage: stage, Err: te}
		}
		if ctx.Err() != nil {
			// DuckDB reports an interrupt, not context.Canceled: trust ctx.
			err, stage = fmt.Errorf("%w during %s", ErrCancelled, stage), StageCancelled
		}
		return &StageError{Stage: stage, Err: err}
	}

	srcs, out, err := r.Prepare(ctx, job, false)
	if err != nil {
		return nil, fail(StageValidating, err)
	}
	defer CloseSources(srcs[:])

	conf, err := r.openConfirmed(ctx, job)
	if err != nil {
		return nil, fail(StageValidating, err)
	}
	defer CloseSources([]Source{conf})
	readable := srcs[:]
	if conf != nil {
		readable = append(readable, conf)
	}
	sess, err := r.NewSession(ctx, readable, CarryPaths(job)...)
	if err != nil {
		return nil, fail(StageValidating, err)
	}
	defer sess.Close()

	spec, err := r.Bind(ctx, sess, job, srcs, Whole)
	if err != nil {
		return nil, fail(StageValidating, err)
	}
	if conf != nil {
		if spec.Confirmed, err = r.bindConfirmed(ctx, sess, job, conf); err != nil {
			return nil, fail(StageValidating, err)
		}
		if _, err := sess.Load(ctx, ConfirmedAlias, nil); err != nil {
			return nil, fail(StageStaging, fmt.Errorf("read confirmed pairs (%s): %w", RedactURI(job.Confirmed), err))
		}
	}

	// Staging: read both sources into the engine (staging.go).
	counts, err := r.stage(ctx, sess, job, log, report)
	if err != nil {
		return nil, fail(StageStaging, err)
	}
	rowsBefore := counts[0] + counts[1]
	if job.CarryOver != nil {
		if err := CarryLoaded(ctx, sess, job); err != nil {
			return nil, fail(StageStaging, err)
		}
	}

	var dir string
	if !dry {
		if dir, err = out.Prepare(ctx); err != nil {
			return nil, fail(StageWriting, fmt.Errorf("prepare output %s: %w", RedactURI(job.OutputPath), err))
		}
	}
	published := false
	defer func() {
		if !published && !dry {
			out.Discard(dir)
		}
	}()

	report(Progress{Stage: StageMatching, Progress: 0, RowsRead: rowsBefore})
	matchStart := time.Now()
	var lastStage Stage = StageMatching
	c, err := sess.Reconcile(ctx, spec, dir, func(p Progress) {
		lastStage = p.Stage
		p.RowsRead = rowsBefore
		report(p)
	})
	if err != nil {
		return nil, fail(lastStage, err)
	}
	if job.CarryOver != nil {
		if c.CarryOver, c.Ageing, err = CarryCounts(ctx, sess, job, spec.CarriedFrom, dir); err != nil {
			return nil, fail(StageWriting, err)
		}
	}
	elapsed := time.Since(matchStart)
	log.Info("reconciled", "matched", c.Matched, "unmatched_left", c.UnmatchedLeft, "unmatched_right", c.UnmatchedRight, "elapsed", elapsed.Round(time.Millisecond))
	r.stageDone(StageTime{Stage: StageMatching, Elapsed: elapsed})

	if dry {
		res := newResult(job, c, counts, start)
		res.DryRun = true
		return res, nil
	}
	res, err := PublishResult(ctx, job, out, dir, c, counts, start)
	if err != nil {
		return nil, fail(StageWriting, err)
	}
	published = true
	report(Progress{Stage: StageWriting, Progress: 1, RowsRead: rowsBefore, MatchedSoFar: &res.MatchedCount})
	return res, nil
}

// Bind attaches split (Whole, or SchemaOnly for a plan) of each source srcs
// of job to sess and binds match_sql (which Prepare checked), so that every error that depends only on schemas is
// reported before any row is read. The MatchSpec says how the result
// identifies source rows.
func (r *Runner) Bind(ctx context.Context, sess Session, job *Job, srcs [2]Source, split SourceSplit) (MatchSpec, error) {
	var attached [2][]Column
	for i, s := range job.Sources {
		cols, err := sess.Attach(ctx, s.Alias, srcs[i], split, s.Filters)
		attached[i] = cols
		if err != nil {
			if IsValidation(err) {
				return MatchSpec{}, prefixField(fmt.Sprintf("sources[%d]", i), err)
			}
			return MatchSpec{}, fmt.Errorf("open source %q (%s): %w", s.Alias, RedactURI(s.URI), err)
		}
		for _, k := range job.KeysOf(s.Alias) {
			if findColumn(cols, k) < 0 {
				return MatchSpec{}, Invalid("primary_keys."+s.Alias, "column %q is not in source %q (columns: %s)", k, s.Alias, ColumnNames(cols))
			}
		}
	}
	var from string
	if job.CarryOver != nil {
		var err error
		if from, err = r.bindCarryOver(ctx, sess, job, attached); err != nil {
			return MatchSpec{}, err
		}
	}
	spec, err := bindRules(ctx, sess, job)
	spec.CarriedFrom = from
	return spec, err
}

// keyMapping finds, for each primary-key column k of alias, the match result
// column that carries it: "<alias>_<k>" if selected, else a lone "k" (unless
// the other source has a key column of that name too, which makes it
// ambiguous).
func keyMapping(job *Job, field, alias, other string, res []Column) (KeyMapping, error) {
	m := KeyMapping{Alias: alias}
	otherKeys := job.KeysOf(other)
	var missing []string
	for _, k := range job.KeysOf(alias) {
		prefixed := alias + "_" + k
		switch {
		case countColumn(res, prefixed) == 1:
			m.ResultColumns = append(m.ResultColumns, res[findColumn(res, prefixed)].Name)
		case countColumn(res, k) == 1 && !containsFold(otherKeys, k):
			m.ResultColumns = append(m.ResultColumns, res[findColumn(res, k)].Name)
		default:
			missing = append(missing, fmt.Sprintf("%q (select it AS %s)", k, quoteIdentIfNeeded(prefixed)))
			continue
		}
		m.SourceColumns = append(m.SourceColumns, k)
	}
	if len(missing) > 0 {
		return m, Invalid(field, "the result must carry the primary key of %q to identify matched rows; missing %s (result columns: %s)",
			alias, strings.Join(missing, ", "), ColumnNames(res))
	}
	return m, nil
}

func findColumn(cols []Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	for i, c := range cols {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

func countColumn(cols []Column, name string) int {
	n := 0
	for _, c := range cols {
		if strings.EqualFold(c.Name, name) {
			n++
		}
	}
	return n
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func quoteIdentIfNeeded(s string) string {
	if isIdentifier(s) {
		return s
	}
	return quoteIdent(s)
}

// quoteIdent quotes a column or alias name for SQL.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// newResult is the completion payload of job's counts, without output
// locations.
func newResult(job *Job, c Counts, sizes [2]int64, start time.Time) *Result {
	return &Result{
		RunID:               job.RunID,
		MatchedCount:        c.Matched,
		UnmatchedLeftCount:  c.UnmatchedLeft,
		UnmatchedRightCount: c.UnmatchedRight,
		LeftCount:           sizes[0],
		RightCount:          sizes[1],
		ElapsedMS:           time.Since(start).Milliseconds(),
		Rules:               c.Rules,
		Reasons:             c.Reasons,
		SuggestedCount:      c.Suggested,
		CarryOver:           c.CarryOver,
		Ageing:              c.Ageing,
	}
}

// Log returns the runner's logger, slog.Default() when it has none.
func (r *Runner) Log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// PublishResult writes summary.json for a job's counts into dir and makes
// the result visible through out. It is the last step of every job, run in
// process or distributed; sizes are the source row counts, start when the
// job started (for elapsed_ms).
func PublishResult(ctx context.Context, job *Job, out Output, dir string, c Counts, sizes [2]int64, start time.Time) (*Result, error) {
	res := newResult(job, c, sizes, start)
	res.OutputPaths = OutputPaths{
		Matched:        out.Location(MatchedFile),
		UnmatchedLeft:  out.Location(UnmatchedLeftFile),
		UnmatchedRight: out.Location(UnmatchedRightFile),
	}
	if job.Suggests() {
		res.OutputPaths.Suggested = out.Location(SuggestedFile)
	}
	if job.CarryOver != nil && job.CarryOver.MaxAgeDays != nil {
		res.OutputPaths.ExpiredLeft, res.OutputPaths.ExpiredRight = out.Location(ExpiredLeftFile), out.Location(ExpiredRightFile)
	}
	summary, err := MarshalIndent(res)
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SummaryFile), summary, 0o644); err != nil {
		return nil, fmt.Errorf("write summary: %w", err)
	}
	if err := publishOutput(ctx, out, dir); err != nil {
		return nil, fmt.Errorf("publish results to %s: %w", RedactURI(job.OutputPath), err)
	}
	return res, nil
}
