package kalla

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Rule is one pass of a waterfall: its match_sql sees only the rows that no
// earlier rule matched, on either side.
type Rule struct {
	// Name identifies the rule in matched.parquet (_kalla_rule), in the
	// per-rule counts and in errors.
	Name     string `json:"name"`
	MatchSQL string `json:"match_sql"`
	// Exclusive, when set, uses each row of its sides at most once.
	Exclusive *Exclusive `json:"exclusive,omitempty"`
	// Explain uses this rule to explain the unmatched rows (Job.Explain
	// uses every rule).
	Explain bool `json:"explain,omitempty"`
	// Status is StatusMatched (the default) or StatusSuggested: a
	// suggested rule's pairs go to suggested.parquet for a person to
	// confirm, and its rows stay unmatched (reason "suggested"), unseen by
	// later rules.
	Status string `json:"status,omitempty"`
}

// The statuses of a rule's pairs.
const (
	StatusMatched   = "matched"
	StatusSuggested = "suggested"
)

// Exclusive makes a rule use each row of Sides at most once, keeping the
// best candidate pairs: those first by OrderBy, then by the left primary
// key, then by the right one. With both sides exclusive the accepted pairs
// are those of the sequential greedy walk over that order.
type Exclusive struct {
	// Sides are the aliases whose rows are used at most once; empty means
	// both sources.
	Sides []string `json:"sides,omitempty"`
	// OrderBy names columns of the rule's result, best first: "col"
	// (ascending) or "col DESC". NULLs sort last either way.
	OrderBy []string `json:"order_by,omitempty"`
	// Ties is TiesLowestKey (the default) or TiesLeaveUnmatched.
	Ties string `json:"ties,omitempty"`
}

// The ways an exclusive rule settles a row whose best candidates are equally
// good on every order_by column.
const (
	// TiesLowestKey takes the candidate with the lowest key: the order is
	// total, so the result never depends on input order.
	TiesLowestKey = "lowest_key"
	// TiesLeaveUnmatched leaves such a row unmatched by the rule: a person
	// decides (see Exclusive and the README's "Ties").
	TiesLeaveUnmatched = "leave_unmatched"
)

// ReservedPrefix starts the names of the columns Kalla adds to its outputs;
// a rule's result may not use it.
const ReservedPrefix = "_kalla_"

// RuleColumn is the column of matched.parquet that names the rule that
// matched a row, for jobs with rules.
const RuleColumn = ReservedPrefix + "rule"

// UnmarshalJSON accepts `true` as shorthand for an exclusive rule over both
// sides ordered by key alone, and `false` or null for none; anything else
// is an object with the fields of Exclusive.
func (e *Exclusive) UnmarshalJSON(b []byte) error {
	switch t := string(bytes.TrimSpace(b)); t {
	case "true":
		*e = Exclusive{}
		return nil
	case "false", "null":
		return Invalid("exclusive", "%s is not a setting: leave the field out for a rule that may use a row more than once", t)
	}
	type plain Exclusive
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Invalid("exclusive."+strings.Trim(name, `"`), "unknown field (exclusive takes sides, order_by and ties)")
		}
		return err
	}
	*e = Exclusive(p)
	return nil
}

// OrderKey is one parsed entry of Exclusive.OrderBy.
type OrderKey struct {
	Column string `json:"column"`
	Desc   bool   `json:"desc,omitempty"`
}

// ParseOrderBy parses the entries of Exclusive.OrderBy: a column name (in
// double quotes when it holds spaces), optionally followed by ASC or DESC.
func ParseOrderBy(list []string) ([]OrderKey, error) {
	out := make([]OrderKey, 0, len(list))
	seen := map[string]bool{}
	for i, s := range list {
		col, rest, ok := splitOrderBy(s)
		k := OrderKey{Column: col}
		switch {
		case !ok:
		case rest == "", strings.EqualFold(rest, "asc"):
		case strings.EqualFold(rest, "desc"):
			k.Desc = true
		default:
			ok = false
		}
		if !ok {
			return nil, Invalid(fmt.Sprintf("order_by[%d]", i), "%q must be a result column, optionally followed by ASC or DESC", s)
		}
		if seen[strings.ToLower(k.Column)] {
			return nil, Invalid(fmt.Sprintf("order_by[%d]", i), "names column %q twice", k.Column)
		}
		seen[strings.ToLower(k.Column)] = true
		out = append(out, k)
	}
	return out, nil
}

// Suggests reports whether some rule of the job suggests pairs.
func (j *Job) Suggests() bool {
	for _, r := range j.Rules {
		if r.Status == StatusSuggested {
			return true
		}
	}
	return false
}

// splitOrderBy splits an order_by entry into its column, a name or a
// double-quoted identifier (which may hold spaces; "" is a quote), and the
// rest; ok is false when there is no column.
func splitOrderBy(s string) (col, rest string, ok bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, `"`) {
		f := strings.Fields(s)
		if len(f) == 0 {
			return "", "", false
		}
		return f[0], strings.Join(f[1:], " "), true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), strings.TrimSpace(s[i+1:]), b.Len() > 0
	}
	return "", "", false
}

// HasRules reports whether the job gives a list of rules rather than one
// match_sql.
func (j *Job) HasRules() bool { return len(j.Rules) > 0 }

// RuleList returns the job's rules in order; a match_sql job is one rule
// named "match" with the job's exclusive setting.
func (j *Job) RuleList() []Rule {
	if j.HasRules() {
		return j.Rules
	}
	return []Rule{{Name: "match", MatchSQL: j.MatchSQL, Exclusive: j.Exclusive}}
}

// ruleField is the JSON path of rule i's field for errors: "match_sql" for
// a job without rules.
func (j *Job) ruleField(i int, field string) string {
	if !j.HasRules() {
		return field
	}
	return fmt.Sprintf("rules[%d].%s", i, field)
}

// RuleField is ruleField for the packages that bind rules.
func (j *Job) RuleField(i int, field string) string { return j.ruleField(i, field) }

// validateRules checks that the job has match_sql or rules.
func (j *Job) validateRules() error {
	switch {
	case j.HasRules() && strings.TrimSpace(j.MatchSQL) != "":
		return Invalid("rules", "give either match_sql or rules, not both")
	case j.Rules != nil && len(j.Rules) == 0:
		return Invalid("rules", "is empty: give at least one rule, or match_sql")
	case !j.HasRules() && strings.TrimSpace(j.MatchSQL) == "":
		return Invalid("match_sql", "is required: a SQL query over the source aliases whose every row is one match (or give rules)")
	case j.HasRules() && j.Exclusive != nil:
		return Invalid("exclusive", "applies to a match_sql job; give each rule its own exclusive")
	}
	return nil
}

// validateRuleList checks the rules' names and exclusive settings; the
// sources have been checked.
func (j *Job) validateRuleList() error {
	names := map[string]int{}
	for i, r := range j.RuleList() {
		if j.HasRules() {
			field := fmt.Sprintf("rules[%d].name", i)
			switch {
			case r.Name == "":
				return Invalid(field, "is required: a name for the rule (letters, digits, underscore)")
			case !isIdentifier(r.Name):
				return Invalid(field, "%q must be letters, digits and underscores, not starting with a digit", r.Name)
			case strings.EqualFold(r.Name, "confirmed"):
				return Invalid(field, "%q is reserved for pairs a person confirmed", r.Name)
			}
			if k, dup := names[strings.ToLower(r.Name)]; dup {
				return Invalid(field, "duplicate rule name %q (rules[%d] has it)", r.Name, k)
			}
			names[strings.ToLower(r.Name)] = i
			if strings.TrimSpace(r.MatchSQL) == "" {
				return Invalid(fmt.Sprintf("rules[%d].match_sql", i), "is required")
			}
			switch r.Status {
			case "", StatusMatched, StatusSuggested:
			default:
				return Invalid(fmt.Sprintf("rules[%d].status", i), "%q is not a status: use %q (the default) or %q", r.Status, StatusMatched, StatusSuggested)
			}
		}
		if err := j.validateExclusive(r.Exclusive); err != nil {
			prefix := "exclusive"
			if j.HasRules() {
				prefix = fmt.Sprintf("rules[%d].exclusive", i)
			}
			return prefixField(prefix, err)
		}
	}
	return nil
}

func (j *Job) validateExclusive(e *Exclusive) error {
	if e == nil {
		return nil
	}
	seen := map[string]bool{}
	for k, side := range e.Sides {
		field := fmt.Sprintf("sides[%d]", k)
		if j.SideOf(side) < 0 {
			return Invalid(field, "%q names no source: the aliases are %q and %q", side, j.Sources[0].Alias, j.Sources[1].Alias)
		}
		if seen[strings.ToLower(side)] {
			return Invalid(field, "names %q twice", side)
		}
		seen[strings.ToLower(side)] = true
	}
	switch e.Ties {
	case "", TiesLowestKey, TiesLeaveUnmatched:
	default:
		return Invalid("ties", "%q is not a way to settle ties: use %q (the default) or %q", e.Ties, TiesLowestKey, TiesLeaveUnmatched)
	}
	if _, err := ParseOrderBy(e.OrderBy); err != nil {
		return err
	}
	return nil
}

// SideOf returns 0 for the left source's alias, 1 for the right one's
// (matched case-insensitively), and -1 for anything else.
func (j *Job) SideOf(alias string) int {
	for i, s := range j.Sources {
		if strings.EqualFold(s.Alias, alias) {
			return i
		}
	}
	return -1
}

// ExclusiveSpec is a rule's exclusivity as the engine runs it.
type ExclusiveSpec struct {
	// Sides says, per source (left, right), whether its rows are used at
	// most once.
	Sides   [2]bool    `json:"sides"`
	OrderBy []OrderKey `json:"order_by,omitempty"`
	// LeaveTies leaves rows whose best candidates tie unmatched.
	LeaveTies bool `json:"leave_ties,omitempty"`
}

// ExclusiveSpec resolves the exclusive setting of rule i (of RuleList);
// nil when the rule is not exclusive.
func (j *Job) ExclusiveSpec(i int) (*ExclusiveSpec, error) {
	return j.exclusiveSpec(j.RuleList()[i].Exclusive)
}

// exclusiveSpec resolves e against job's aliases; Validate has checked it.
func (j *Job) exclusiveSpec(e *Exclusive) (*ExclusiveSpec, error) {
	if e == nil {
		return nil, nil
	}
	x := &ExclusiveSpec{LeaveTies: e.Ties == TiesLeaveUnmatched}
	if len(e.Sides) == 0 {
		x.Sides = [2]bool{true, true}
	}
	for _, s := range e.Sides {
		if i := j.SideOf(s); i >= 0 {
			x.Sides[i] = true
		}
	}
	var err error
	if x.OrderBy, err = ParseOrderBy(e.OrderBy); err != nil {
		return nil, err
	}
	return x, nil
}

// RuleCount is what one rule did: the rows it was offered on each side,
// the candidate pairs its match_sql found, the pairs it kept, the rows it
// left unmatched as ties, and the time it took (summed over partitions in
// cluster mode).
type RuleCount struct {
	Name       string `json:"name"`
	LeftIn     int64  `json:"left_in"`
	RightIn    int64  `json:"right_in"`
	Candidates int64  `json:"candidates"`
	Matched    int64  `json:"matched"`
	Ties       int64  `json:"ties"`
	ElapsedMS  int64  `json:"elapsed_ms"`
}

// AddRuleCounts adds the per-rule counts of b (another partition's) to a.
func AddRuleCounts(a, b []RuleCount) []RuleCount {
	if a == nil {
		return append([]RuleCount(nil), b...)
	}
	for i := range b {
		if i < len(a) {
			a[i].LeftIn += b[i].LeftIn
			a[i].RightIn += b[i].RightIn
			a[i].Candidates += b[i].Candidates
			a[i].Matched += b[i].Matched
			a[i].Ties += b[i].Ties
			a[i].ElapsedMS += b[i].ElapsedMS
		}
	}
	return a
}
