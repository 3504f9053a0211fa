package kalla

import "context"

// Engine runs reconciliations. Each job gets its own Session, so concurrent
// jobs never see each other's tables or files.
type Engine interface {
	// CheckSQL parses query without binding or running it and refuses
	// anything but one SELECT that reads only the tables aliases and the
	// names it defines itself (no table function, file path, qualified
	// name, catalog view, or function reaching outside the job), so a
	// syntax error or an escape is reported before any source is read. The
	// error names the offending part; callers report it on match_sql.
	CheckSQL(ctx context.Context, query string, aliases []string) error
	// NewSession starts a job's workspace. The session may read only its
	// own temp folder and allowed: files, and folders (ending in a slash)
	// with everything below them; it writes only there and into the
	// folders its writing methods are given.
	NewSession(ctx context.Context, allowed ...string) (Session, error)
}

// Session is one job's workspace in the engine. Its methods are called in
// order: Attach (both sources), QueryColumns, Load (both sources),
// Reconcile; Close always. The job's match_sql has passed
// Engine.CheckSQL first.
type Session interface {
	// Attach declares alias as a table with the columns of split (Whole
	// for all of it) of src, after filters, and returns them; no rows are
	// read yet, though Read may copy files. A filter naming a missing
	// column is a *ValidationError.
	Attach(ctx context.Context, alias string, src Source, split SourceSplit, filters []Filter) ([]Column, error)
	// QueryColumns binds sql against the attached tables without running it
	// and returns its result columns.
	QueryColumns(ctx context.Context, sql string) ([]Column, error)
	// Load reads the rows of alias; progress, if not nil, is called with the
	// number of rows read so far. It returns the row count.
	Load(ctx context.Context, alias string, progress func(rows int64)) (int64, error)
	// Reconcile runs the match and writes MatchedFile, UnmatchedLeftFile
	// and UnmatchedRightFile into the local folder dir; with dir empty (a
	// dry run) it writes nothing and only counts them.
	Reconcile(ctx context.Context, spec MatchSpec, dir string, progress func(Progress)) (Counts, error)
	Close() error
}

// MatchSpec is what Reconcile needs: the rules in order, each with how its
// result columns identify the source rows it matched.
type MatchSpec struct {
	Rules []RuleSpec `json:"rules"`
	// Labelled is set for jobs with rules or confirmed pairs: matched rows
	// carry RuleColumn.
	Labelled bool `json:"labelled,omitempty"`
	// Confirmed, when set, is matched before the rules.
	Confirmed *ConfirmedSpec `json:"confirmed,omitempty"`
	// CarriedFrom is the run id of the previous run a carry-over job took
	// its open items from.
	CarriedFrom string `json:"carried_from,omitempty"`
}

// Suggests reports whether any rule suggests pairs.
func (m MatchSpec) Suggests() bool {
	for _, r := range m.Rules {
		if r.Suggested {
			return true
		}
	}
	return false
}

// Explains reports whether any rule explains the unmatched rows.
func (m MatchSpec) Explains() bool {
	for _, r := range m.Rules {
		if r.Explain {
			return true
		}
	}
	return false
}

// RuleSpec is one rule as the engine runs it.
type RuleSpec struct {
	Name      string         `json:"name"`
	SQL       string         `json:"sql"`
	Left      KeyMapping     `json:"left"`
	Right     KeyMapping     `json:"right"`
	Exclusive *ExclusiveSpec `json:"exclusive,omitempty"`
	// Explain uses the rule to explain the unmatched rows.
	Explain bool `json:"explain,omitempty"`
	// Suggested sends the rule's pairs to SuggestedFile, not MatchedFile.
	Suggested bool `json:"suggested,omitempty"`
}

// Keys returns the key mapping of side (0 left, 1 right).
func (r RuleSpec) Keys(side int) KeyMapping {
	if side == 0 {
		return r.Left
	}
	return r.Right
}

// Plain reports whether m is a match_sql job without exclusive: every row
// of its one query is a match, written as it is, as before rules existed.
func (m MatchSpec) Plain() bool {
	return len(m.Rules) == 1 && !m.Labelled && m.Confirmed == nil && m.Rules[0].Exclusive == nil && !m.Rules[0].Explain
}

// KeyMapping ties a source's primary-key columns to the match result columns
// that carry them.
type KeyMapping struct {
	Alias         string   `json:"alias"`
	SourceColumns []string `json:"source_columns"`
	ResultColumns []string `json:"result_columns"`
}

// Counts are the sizes of the three results, and what each rule did (nil
// for a plain match_sql job).
type Counts struct {
	Matched, UnmatchedLeft, UnmatchedRight int64
	Rules                                  []RuleCount   `json:",omitempty"`
	Reasons                                *ReasonCounts `json:",omitempty"`
	// CarryOver and Ageing are set for carry-over jobs.
	CarryOver *CarryOverCounts `json:",omitempty"`
	Ageing    *Ageing          `json:",omitempty"`
	// Suggested counts the suggested pairs (SuggestedFile).
	Suggested int64 `json:",omitempty"`
}
