package kalla

import "context"

// The reasons an unmatched row carries in _kalla_reason when the job asks
// to explain (Job.Explain or Rule.Explain).
const (
	// ReasonNullKey: a column of the row's key in the rule is NULL, so it
	// equals no row.
	ReasonNullKey = "null_key"
	// ReasonNoCandidate: no row of the other side has the row's key.
	ReasonNoCandidate = "no_candidate"
	// ReasonOutsideRule: rows share the key but fail other conditions;
	// _kalla_near_failed lists them.
	ReasonOutsideRule = "outside_rule"
	// ReasonTaken: a candidate passed the rule but was used by a better
	// pair or an earlier rule (_kalla_near_taken_by).
	ReasonTaken = "taken"
	// ReasonTie: the row was left unmatched by ties "leave_unmatched".
	ReasonTie = "tie"
	// ReasonSuggested: a suggested rule paired the row (see
	// suggested.parquet); a person confirms it.
	ReasonSuggested = "suggested"
	// ReasonTooManyCandidates: more rows share the key than
	// MaxExplainCandidates; counted, not explained.
	ReasonTooManyCandidates = "too_many_candidates"
)

// MaxExplainCandidates bounds the rows of the other side that share an
// unmatched row's key and are compared with it, per rule. A row with more
// gets ReasonTooManyCandidates: explaining it would cost as much as a
// cross join of its key.
const MaxExplainCandidates = 1000

// The columns explain adds to the unmatched files.
const (
	ReasonColumn      = ReservedPrefix + "reason"
	NearKeyColumn     = ReservedPrefix + "near_key"
	NearRuleColumn    = ReservedPrefix + "near_rule"
	NearFailedColumn  = ReservedPrefix + "near_failed"
	NearDistColumn    = ReservedPrefix + "near_distance"
	NearTakenByColumn = ReservedPrefix + "near_taken_by"
)

// ReasonCounts counts the unmatched rows of each side by reason.
type ReasonCounts struct {
	Left  map[string]int64 `json:"left"`
	Right map[string]int64 `json:"right"`
}

// Add adds b's counts to r's.
func (r *ReasonCounts) Add(b *ReasonCounts) *ReasonCounts {
	if b == nil {
		return r
	}
	if r == nil {
		r = &ReasonCounts{Left: map[string]int64{}, Right: map[string]int64{}}
	}
	for k, v := range b.Left {
		r.Left[k] += v
	}
	for k, v := range b.Right {
		r.Right[k] += v
	}
	return r
}

// Explains reports whether rule i of RuleList is used to explain the
// unmatched rows.
func (j *Job) Explains(i int) bool {
	return j.Explain || (j.HasRules() && j.Rules[i].Explain)
}

// ExplainsAny reports whether the job explains its unmatched rows.
func (j *Job) ExplainsAny() bool {
	for i := range j.RuleList() {
		if j.Explains(i) {
			return true
		}
	}
	return false
}

// ExplainChecker is implemented by engine sessions that can tell, before
// any row is read, whether a rule can be explained (its shape: one join of
// the two sources with an equality key).
type ExplainChecker interface {
	CheckExplain(ctx context.Context, sql string, aliases [2]string) error
}
