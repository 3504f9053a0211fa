package kalla

import (
	"context"
	"fmt"
	"strings"
)

// bindRules binds every rule of job against the attached sources and returns
// the MatchSpec: each rule's key mappings and resolved exclusivity. A rule
// whose result lacks a primary key, uses the reserved column prefix, orders
// by a column it does not return, or gives a column a type another rule's
// column of that name cannot share, is a *ValidationError naming it.
func bindRules(ctx context.Context, sess Session, job *Job) (MatchSpec, error) {
	spec := MatchSpec{Labelled: job.HasRules() || job.Confirmed != ""}
	// owner records, per lower-cased result column, the first rule that
	// returned it and its type, for the stacked matched.parquet.
	type owner struct {
		rule string
		col  Column
	}
	stacked := map[string]owner{}
	for i, rule := range job.RuleList() {
		field := job.RuleField(i, "match_sql")
		cols, err := sess.QueryColumns(ctx, rule.MatchSQL)
		if err != nil {
			return MatchSpec{}, Invalid(field, "%v", err)
		}
		for _, c := range cols {
			if strings.HasPrefix(strings.ToLower(c.Name), ReservedPrefix) {
				return MatchSpec{}, Invalid(field, "result column %q uses the prefix %q, which Kalla reserves for the columns it adds", c.Name, ReservedPrefix)
			}
			if !job.HasRules() {
				continue
			}
			key := strings.ToLower(c.Name)
			prev, ok := stacked[key]
			if !ok {
				stacked[key] = owner{rule: rule.Name, col: c}
				continue
			}
			if !stackable(prev.col.Type, c.Type) {
				return MatchSpec{}, Invalid(field, "column %q is %s here but %s in rule %q: matched.parquet stacks the rules' rows by column name, so give it one type (CAST it) or another name",
					c.Name, c.Type.SQL(), prev.col.Type.SQL(), prev.rule)
			}
		}
		rs := RuleSpec{Name: rule.Name, SQL: rule.MatchSQL, Explain: job.Explains(i), Suggested: rule.Status == StatusSuggested}
		if ec, ok := sess.(ExplainChecker); ok && rs.Explain {
			if err := ec.CheckExplain(ctx, rule.MatchSQL, [2]string{job.Left().Alias, job.Right().Alias}); err != nil {
				return MatchSpec{}, Invalid(field, "cannot be explained: %v", err)
			}
		}
		if rs.Left, err = keyMapping(job, field, job.Left().Alias, job.Right().Alias, cols); err != nil {
			return MatchSpec{}, err
		}
		if rs.Right, err = keyMapping(job, field, job.Right().Alias, job.Left().Alias, cols); err != nil {
			return MatchSpec{}, err
		}
		if rs.Exclusive, err = job.exclusiveSpec(rule.Exclusive); err != nil {
			return MatchSpec{}, err
		}
		if x := rs.Exclusive; x != nil {
			for k, o := range x.OrderBy {
				c := findColumn(cols, o.Column)
				if c < 0 {
					prefix := "exclusive"
					if job.HasRules() {
						prefix = fmt.Sprintf("rules[%d].exclusive", i)
					}
					return MatchSpec{}, Invalid(fmt.Sprintf("%s.order_by[%d]", prefix, k), "column %q is not returned by the rule's match_sql (columns: %s)", o.Column, ColumnNames(cols))
				}
				x.OrderBy[k].Column = cols[c].Name
			}
		}
		spec.Rules = append(spec.Rules, rs)
	}
	return spec, nil
}

// stackable reports whether columns of types a and b can be stacked into
// one column without losing a value: the same kind, or integers and
// decimals (which stack as a DECIMAL wide enough for both). A float never
// stacks with an exact number: money would become a float.
func stackable(a, b Type) bool {
	exact := func(t Type) bool {
		switch t.Kind {
		case TypeSmallint, TypeInteger, TypeBigint, TypeDecimal:
			return true
		}
		return false
	}
	if a.Kind == b.Kind {
		return true
	}
	return exact(a) && exact(b)
}
