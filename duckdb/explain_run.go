package duckdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// explain returns, for each side's unmatched rows (the queries unmatched),
// a query that adds why each row is unmatched and its nearest candidate,
// and the counts by reason. The work is done on the unmatched rows' keys
// wherever it can be: at millions of unmatched rows, explain costs what
// its few large statements cost (logged at debug level, "explain step").
//
// For each explaining rule, the unmatched rows of a side are joined again
// to all the other side's rows on the rule's key alone, every other
// condition is evaluated on each pair, and the nearest pair is kept: fewest
// failed conditions, then the rule's order_by values, then the tolerance
// gaps, then the other row's key. A nearest pair that passes every
// condition means its other row was taken (by a better pair or an earlier
// rule, found in the taken keys) or, under ties "leave_unmatched", a tie.
// Over the rules, a row keeps the most telling explanation: tie, taken,
// outside_rule (fewest failed conditions), too_many_candidates, then the
// earliest rule. A row no rule finds a candidate for has no_candidate, or
// null_key when its key is NULL in every explaining rule.
func (s *Session) explain(ctx context.Context, spec kalla.MatchSpec, aliases [2]string, srcKeys [2][]string, taken [2]string, unmatched [2]string) ([2]string, *kalla.ReasonCounts, error) {
	shapes := make([]*explainShape, len(spec.Rules))
	for k, rule := range spec.Rules {
		if !rule.Explain {
			continue
		}
		sh, err := s.explainShape(ctx, rule.SQL, aliases)
		if err != nil {
			return unmatched, nil, fmt.Errorf("rule %q cannot be explained: %w", rule.Name, err)
		}
		shapes[k] = sh
	}
	ruleName := make([]string, len(spec.Rules))
	for k, r := range spec.Rules {
		ruleName[k] = fmt.Sprintf("WHEN %d THEN %s", k, quoteLiteral(r.Name))
	}
	ruleName = append(ruleName, fmt.Sprintf("WHEN %d THEN %s", confirmedBy, quoteLiteral(kalla.ConfirmedRule)))
	byName := func(col string) string {
		return fmt.Sprintf("CASE %s %s END", col, strings.Join(ruleName, " "))
	}
	counts := &kalla.ReasonCounts{Left: map[string]int64{}, Right: map[string]int64{}}
	var out [2]string
	for side := range 2 {
		// The unmatched rows are read by every rule and by the final
		// join: an anti-join of the whole source, computed once.
		kept := s.qualified(fmt.Sprintf("_kalla_unmatched_%d", side))
		if err := s.explainExec(ctx, "unmatched", fmt.Sprintf("CREATE TABLE %s AS %s", kept, unmatched[side])); err != nil {
			return unmatched, nil, fmt.Errorf("keep the unmatched rows: %w", err)
		}
		unmatched[side] = "SELECT * FROM " + kept
		uCols := make([]string, len(srcKeys[side]))
		for i := range uCols {
			uCols[i] = fmt.Sprintf("_kalla_u%d", i)
		}
		var entries []string
		var nullKey []string
		// Each rule's own entries name a row once (a nearest candidate or
		// too many); only several rules, ties or suggestions need a choice.
		choose := suggestingRules(spec) != ""
		explaining := 0
		for k, rule := range spec.Rules {
			sh := shapes[k]
			if sh == nil {
				continue
			}
			explaining++
			if x := rule.Exclusive; explaining > 1 || (x != nil && x.LeaveTies && x.Sides[side]) {
				choose = true
			}
			e, err := s.explainRule(ctx, k, rule, sh, side, aliases, srcKeys, taken, unmatched[side], byName)
			if err != nil {
				return unmatched, nil, fmt.Errorf("rule %q: %w", rule.Name, err)
			}
			entries = append(entries, e...)
			var anyNull []string
			for _, c := range sh.sideKeys(side) {
				anyNull = append(anyNull, "src."+quoteIdent(c)+" IS NULL")
			}
			nullKey = append(nullKey, "("+strings.Join(anyNull, " OR ")+")")
		}
		if ks := suggestingRules(spec); ks != "" {
			var tSel []string
			for i, c := range srcKeys[side] {
				tSel = append(tSel, fmt.Sprintf("%s AS _kalla_u%d", quoteIdent(c), i))
			}
			entries = append(entries, fmt.Sprintf(`SELECT %s, %s, NULL::VARCHAR, %s, NULL::VARCHAR[], NULL::VARCHAR[], NULL::VARCHAR, -2, _kalla_by FROM %s WHERE _kalla_by IN (%s)`,
				strings.Join(tSel, ", "), quoteLiteral(kalla.ReasonSuggested), byName("_kalla_by"), taken[side], ks))
		}
		why := s.qualified(fmt.Sprintf("_kalla_why_%d", side))
		pick := ""
		if choose {
			pick = fmt.Sprintf(" QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _kalla_score, _kalla_rule_idx) = 1", strings.Join(uCols, ", "))
		}
		if err := s.explainExec(ctx, "why", fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM (%s)%s",
			why, strings.Join(entries, " UNION ALL "), pick)); err != nil {
			return unmatched, nil, fmt.Errorf("choose explanations: %w", err)
		}
		reason := fmt.Sprintf("coalesce(w._kalla_reason, CASE WHEN %s THEN %s ELSE %s END)",
			strings.Join(nullKey, " AND "), quoteLiteral(kalla.ReasonNullKey), quoteLiteral(kalla.ReasonNoCandidate))
		join := fmt.Sprintf("FROM (%s) AS src LEFT JOIN %s AS w ON %s", unmatched[side], why, joinOn("w", uCols, "src", srcKeys[side]))
		// The explained rows are not kept: the write streams them, and the
		// counts read only the keys and the reasons of the same join.
		start := time.Now()
		rows, err := s.conn.QueryContext(ctx, fmt.Sprintf("SELECT %s, count(*) %s GROUP BY 1", reason, join))
		if err != nil {
			return unmatched, nil, fmt.Errorf("count reasons: %w", cleanError(err))
		}
		m := counts.Left
		if side == 1 {
			m = counts.Right
		}
		for rows.Next() {
			var reason string
			var n int64
			if err := rows.Scan(&reason, &n); err != nil {
				rows.Close()
				return unmatched, nil, err
			}
			m[reason] = n
		}
		if err := rows.Close(); err != nil {
			return unmatched, nil, err
		}
		s.engine.logger.Debug("explain step", "step", "count", "seconds", time.Since(start).Seconds())
		out[side] = fmt.Sprintf(`SELECT src.*, %s AS %s,
  w._kalla_near_key AS %s, w._kalla_near_rule AS %s, w._kalla_near_failed AS %s, w._kalla_near_distance AS %s, w._kalla_near_taken_by AS %s
%s`,
			reason, quoteIdent(kalla.ReasonColumn),
			quoteIdent(kalla.NearKeyColumn), quoteIdent(kalla.NearRuleColumn), quoteIdent(kalla.NearFailedColumn), quoteIdent(kalla.NearDistColumn), quoteIdent(kalla.NearTakenByColumn),
			join)
	}
	return out, counts, nil
}

// explainRule returns the SELECTs that give, for rule k, the explanations
// of side's unmatched rows (unmatched): their nearest candidates, the rows
// with too many candidates, and the rule's ties.
func (s *Session) explainRule(ctx context.Context, k int, rule kalla.RuleSpec, sh *explainShape, side int, aliases [2]string, srcKeys [2][]string, taken [2]string, unmatched string, byName func(string) string) ([]string, error) {
	other := 1 - side
	uKey, oKey := sh.sideKeys(side), sh.sideKeys(other)
	// Candidates are counted only for the keys of unmatched rows: the
	// semi join leaves the GROUP BY a fraction of the other side.
	heavy := s.qualified(fmt.Sprintf("_kalla_heavy_%d_%d", k, side))
	if err := s.explainExec(ctx, "heavy", fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT %s FROM %s AS o SEMI JOIN (%s) AS u ON %s GROUP BY ALL HAVING count(*) > %d",
		heavy, strings.Join(prefixAll("o.", quoteAll(oKey)), ", "), s.qualified(aliases[other]), unmatched, joinOn("o", oKey, "u", uKey), kalla.MaxExplainCandidates)); err != nil {
		return nil, fmt.Errorf("count candidates: %w", err)
	}
	// The side's unmatched rows that have few enough candidates, and the
	// other side's rows, under the names the rule gives them.
	from := [2]string{}
	from[side] = fmt.Sprintf("(SELECT u.* FROM (%s) AS u ANTI JOIN %s AS h ON %s)", unmatched, heavy, joinOn("u", uKey, "h", oKey))
	from[other] = s.qualified(aliases[other])
	alias := [2]string{quoteIdent(sh.aliases[0]), quoteIdent(sh.aliases[1])}
	keyEq := make([]string, len(sh.keys))
	for i, kp := range sh.keys {
		keyEq[i] = fmt.Sprintf("%s.%s = %s.%s", alias[0], quoteIdent(kp[0]), alias[1], quoteIdent(kp[1]))
	}
	var sel, uCols, cCols []string
	for i, c := range srcKeys[side] {
		sel = append(sel, fmt.Sprintf("%s.%s AS _kalla_u%d", alias[side], quoteIdent(c), i))
		uCols = append(uCols, fmt.Sprintf("_kalla_u%d", i))
	}
	for i, c := range srcKeys[other] {
		sel = append(sel, fmt.Sprintf("%s.%s AS _kalla_c%d", alias[other], quoteIdent(c), i))
		cCols = append(cCols, fmt.Sprintf("_kalla_c%d", i))
	}
	var failed, failedText, dist, order []string
	for i, c := range sh.conds {
		sel = append(sel, fmt.Sprintf("(%s) AS _kalla_ok%d", c.sql, i))
		failed = append(failed, fmt.Sprintf("CASE WHEN _kalla_ok%d IS TRUE THEN 0 ELSE 1 END", i))
		failedText = append(failedText, fmt.Sprintf("CASE WHEN _kalla_ok%d IS TRUE THEN NULL ELSE %s END", i, quoteLiteral(c.text)))
	}
	if x := rule.Exclusive; x != nil {
		for j, o := range x.OrderBy {
			expr, ok := sh.selects[strings.ToLower(o.Column)]
			if !ok {
				continue
			}
			sel = append(sel, fmt.Sprintf("(%s) AS _kalla_o%d", expr, j))
			order = append(order, orderTerm(fmt.Sprintf("_kalla_o%d", j), o.Desc))
			dist = append(dist, fmt.Sprintf("%s || ' = ' || CAST(_kalla_o%d AS VARCHAR)", quoteLiteral(o.Column), j))
		}
	}
	for i, c := range sh.conds {
		if c.gap == "" {
			continue
		}
		sel = append(sel, fmt.Sprintf("(%s) AS _kalla_g%d", c.gap, i))
		order = append(order, orderTerm(fmt.Sprintf("_kalla_g%d", i), false))
		dist = append(dist, fmt.Sprintf("%s || ' = ' || CAST(_kalla_g%d AS VARCHAR)", quoteLiteral(c.label), i))
	}
	failedSum := "0"
	if len(failed) > 0 {
		failedSum = strings.Join(failed, " + ")
	}
	nearest := s.qualified(fmt.Sprintf("_kalla_near_%d_%d", k, side))
	pairs := fmt.Sprintf("SELECT %s FROM %s AS %s JOIN %s AS %s ON %s", strings.Join(sel, ", "), from[0], alias[0], from[1], alias[1], strings.Join(keyEq, " AND "))
	rank := append([]string{"_kalla_failed"}, order...)
	rank = append(rank, cCols...)
	if err := s.explainExec(ctx, "near", fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT *, %s AS _kalla_failed FROM (%s) QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s) = 1",
		nearest, failedSum, pairs, strings.Join(uCols, ", "), strings.Join(rank, ", "))); err != nil {
		return nil, fmt.Errorf("find nearest candidates: %w", err)
	}
	nearKey := "CAST(n._kalla_c0 AS VARCHAR)"
	if len(cCols) > 1 {
		parts := make([]string, len(cCols))
		for i, c := range cCols {
			parts[i] = fmt.Sprintf("CAST(n.%s AS VARCHAR)", c)
		}
		nearKey = fmt.Sprintf("CAST([%s] AS VARCHAR)", strings.Join(parts, ", "))
	}
	passed := kalla.ReasonTaken
	if rule.Exclusive != nil && rule.Exclusive.LeaveTies {
		passed = kalla.ReasonTie
	}
	listOf := func(items []string) string {
		if len(items) == 0 {
			return "CAST([] AS VARCHAR[])"
		}
		return fmt.Sprintf("[x FOR x IN [%s] IF x IS NOT NULL]", strings.Join(items, ", "))
	}
	entries := []string{fmt.Sprintf(`SELECT %[1]s,
  CASE WHEN n._kalla_failed > 0 THEN %[2]s WHEN t._kalla_by IS NOT NULL THEN %[3]s ELSE %[4]s END AS _kalla_reason,
  %[5]s AS _kalla_near_key, %[6]s AS _kalla_near_rule,
  %[7]s AS _kalla_near_failed, %[8]s AS _kalla_near_distance,
  %[9]s AS _kalla_near_taken_by,
  CASE WHEN n._kalla_failed > 0 THEN 10 + n._kalla_failed WHEN t._kalla_by IS NOT NULL THEN 1 ELSE 0 END AS _kalla_score, %[10]d AS _kalla_rule_idx
FROM %[11]s AS n LEFT JOIN (SELECT %[13]s, min(_kalla_by) AS _kalla_by FROM %[12]s AS t SEMI JOIN %[11]s AS n ON %[14]s GROUP BY ALL) AS t ON %[14]s`,
		strings.Join(prefixAll("n.", uCols), ", "), quoteLiteral(kalla.ReasonOutsideRule), quoteLiteral(kalla.ReasonTaken), quoteLiteral(passed),
		nearKey, quoteLiteral(rule.Name), listOf(failedText), listOf(dist), byName("t._kalla_by"), k,
		nearest, taken[other], strings.Join(quoteAll(srcKeys[other]), ", "), joinOn("t", srcKeys[other], "n", cCols))}

	// Rows whose key has too many candidates on the other side.
	var uSel []string
	for i, c := range srcKeys[side] {
		uSel = append(uSel, fmt.Sprintf("u.%s AS _kalla_u%d", quoteIdent(c), i))
	}
	entries = append(entries, fmt.Sprintf(`SELECT %s, %s, NULL::VARCHAR, %s, NULL::VARCHAR[], NULL::VARCHAR[], NULL::VARCHAR, 1000, %d
FROM (%s) AS u SEMI JOIN %s AS h ON %s`,
		strings.Join(uSel, ", "), quoteLiteral(kalla.ReasonTooManyCandidates), quoteLiteral(rule.Name), k, unmatched, heavy, joinOn("u", uKey, "h", oKey)))

	// The rule's ties on this side: its tied rows' keys, as the rule's
	// result named them.
	if x := rule.Exclusive; x != nil && x.LeaveTies && x.Sides[side] {
		km := rule.Keys(side)
		var tSel []string
		for i, c := range km.ResultColumns {
			tSel = append(tSel, fmt.Sprintf("%s AS _kalla_u%d", quoteIdent(c), i))
		}
		entries = append(entries, fmt.Sprintf(`SELECT %s, %s, NULL::VARCHAR, %s, NULL::VARCHAR[], NULL::VARCHAR[], NULL::VARCHAR, -1, %d FROM %s`,
			strings.Join(tSel, ", "), quoteLiteral(kalla.ReasonTie), quoteLiteral(rule.Name), k, s.tiedTable(fmt.Sprintf("_kalla_candidates_%d", k), side)))
	}
	return entries, nil
}

// explainExec runs one statement of explain and logs its duration at debug
// level: explain's cost is the sum of a few large statements, and this is
// how each is measured on real data.
func (s *Session) explainExec(ctx context.Context, step, stmt string) error {
	start := time.Now()
	err := s.exec(ctx, stmt)
	s.engine.logger.Debug("explain step", "step", step, "seconds", time.Since(start).Seconds())
	return err
}
