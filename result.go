package kalla

// Stage is the phase a job is in; callbacks and errors name it.
type Stage string

// The stages of a job, in order. StageCancelled is reported instead of the
// running stage when a job is cancelled.
const (
	StageValidating Stage = "validating"
	StageStaging    Stage = "staging"
	StageMatching   Stage = "matching"
	StageWriting    Stage = "writing_results"
	StageCancelled  Stage = "cancelled"
)

// Result file names inside a job's output_path.
const (
	MatchedFile        = "matched.parquet"
	UnmatchedLeftFile  = "unmatched_left.parquet"
	UnmatchedRightFile = "unmatched_right.parquet"
	// SuggestedFile holds the pairs of suggested rules, for jobs that
	// have them.
	SuggestedFile = "suggested.parquet"
	SummaryFile   = "summary.json"
)

// OptionalResultFiles are the result files only some jobs write. Outputs
// remove an earlier run's copy when a result lacks one.
var OptionalResultFiles = []string{SuggestedFile, ExpiredLeftFile, ExpiredRightFile}

// Progress is the payload of a progress callback.
type Progress struct {
	RunID    string  `json:"run_id"`
	Stage    Stage   `json:"stage"`
	Progress float64 `json:"progress"`
	// Source is the alias being staged, during the staging stage.
	Source string `json:"source,omitempty"`
	// RowsRead counts the rows staged so far over all sources.
	RowsRead int64 `json:"rows_read,omitempty"`
	// MatchedSoFar is known once the match query has run.
	MatchedSoFar *int64 `json:"matched_so_far,omitempty"`
	// Rule names the rule being run, for jobs with rules.
	Rule string `json:"rule,omitempty"`
}

// Result is the completion payload: the callback body, summary.json, and what
// `kallad run` prints.
type Result struct {
	RunID               string      `json:"run_id"`
	MatchedCount        int64       `json:"matched_count"`
	UnmatchedLeftCount  int64       `json:"unmatched_left_count"`
	UnmatchedRightCount int64       `json:"unmatched_right_count"`
	LeftCount           int64       `json:"left_count"`
	RightCount          int64       `json:"right_count"`
	ElapsedMS           int64       `json:"elapsed_ms"`
	OutputPaths         OutputPaths `json:"output_paths,omitzero"`
	// Rules says what each rule did, for jobs with rules or exclusive.
	Rules []RuleCount `json:"rules,omitempty"`
	// SuggestedCount counts the pairs in SuggestedFile, for jobs with
	// suggested rules.
	SuggestedCount int64 `json:"suggested_count,omitempty"`
	// Reasons counts the unmatched rows by reason, for jobs that explain.
	Reasons *ReasonCounts `json:"reasons,omitempty"`
	// DryRun is set when nothing was written (kallad run --dry-run, or
	// POST /api/jobs?dry_run=true): OutputPaths is then empty, and left out
	// of the JSON, since there are no files to point to.
	DryRun bool `json:"dry_run,omitempty"`
	// CarryOver and Ageing report a carry-over job (carryover.go).
	CarryOver *CarryOverCounts `json:"carry_over,omitempty"`
	Ageing    *Ageing          `json:"ageing,omitempty"`
}

// OutputPaths locates the result files.
type OutputPaths struct {
	Matched        string `json:"matched"`
	UnmatchedLeft  string `json:"unmatched_left"`
	UnmatchedRight string `json:"unmatched_right"`
	Suggested      string `json:"suggested,omitempty"`
	// The expired files of a carry-over job with max_age_days.
	ExpiredLeft  string `json:"expired_left,omitempty"`
	ExpiredRight string `json:"expired_right,omitempty"`
}

// ErrorReport is the payload of an error callback.
type ErrorReport struct {
	RunID string `json:"run_id"`
	Stage Stage  `json:"stage"`
	Error string `json:"error"`
}
