package duckdb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
)

// explainTypes are the DuckDB types explain builds its text columns of
// a known set of values in: the reasons, the rule names (near rule and
// taken by) and the conditions' texts (the failed conditions' lists).
//
// They are ENUM types, for the Parquet writer: an ENUM column is written
// as the same strings (BYTE_ARRAY, UTF8; read back as VARCHAR), from its
// dictionary, without hashing each row's string to build one. On the 5M
// benchmark that is about 0.1 s of CPU per unmatched file.
type explainTypes struct {
	reason, rule, cond string
	// whens name each rule by its index (_kalla_by), for byName.
	whens []string
}

// newExplainTypes creates the types of spec's explanations.
func (s *Session) newExplainTypes(ctx context.Context, spec kalla.MatchSpec, shapes []*explainShape) (explainTypes, error) {
	t := explainTypes{
		reason: s.qualified("_kalla_reason_t"),
		rule:   s.qualified("_kalla_rule_t"),
		cond:   "VARCHAR", // no condition: the lists are always empty
	}
	reasons := []string{kalla.ReasonNullKey, kalla.ReasonNoCandidate, kalla.ReasonOutsideRule, kalla.ReasonTaken,
		kalla.ReasonTie, kalla.ReasonTooManyCandidates, kalla.ReasonSuggested}
	rules := []string{kalla.ConfirmedRule}
	t.whens = []string{fmt.Sprintf("WHEN %d THEN %s", confirmedBy, typed(kalla.ConfirmedRule, t.rule))}
	var conds []string
	for k, r := range spec.Rules {
		rules = append(rules, r.Name)
		t.whens = append(t.whens, fmt.Sprintf("WHEN %d THEN %s", k, typed(r.Name, t.rule)))
		if shapes[k] != nil {
			for _, c := range shapes[k].conds {
				conds = append(conds, c.text)
			}
		}
	}
	stmts := []string{enumType(t.reason, reasons), enumType(t.rule, rules)}
	if len(conds) > 0 {
		t.cond = s.qualified("_kalla_cond_t")
		stmts = append(stmts, enumType(t.cond, conds))
	}
	if err := s.exec(ctx, stmts...); err != nil {
		return t, fmt.Errorf("create the types of the explanations: %w", err)
	}
	return t, nil
}

// enumType creates the ENUM type name of values, each once.
func enumType(name string, values []string) string {
	values = slices.Clone(values)
	slices.Sort(values)
	values = slices.Compact(values)
	lits := make([]string, len(values))
	for i, v := range values {
		lits[i] = quoteLiteral(v)
	}
	return fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", name, strings.Join(lits, ", "))
}

// typed is the SQL literal v of type typ.
func typed(v, typ string) string {
	return quoteLiteral(v) + "::" + typ
}

// filler is the columns of an explanation entry after its reason that a
// reason with no nearest candidate (too many candidates, a tie, a
// suggested pair) leaves empty: near key, rule (nearRule), failed
// conditions, distances and taken by.
func (t explainTypes) filler(nearRule string) string {
	return fmt.Sprintf("NULL::VARCHAR, %s, NULL::%s[], NULL::VARCHAR[], NULL::%s", nearRule, t.cond, t.rule)
}

// byName is the name of the rule whose index is in the column col.
func (t explainTypes) byName(col string) string {
	return fmt.Sprintf("CASE %s %s END", col, strings.Join(t.whens, " "))
}
