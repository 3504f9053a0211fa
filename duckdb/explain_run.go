package duckdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// explainShapes analyses each explaining rule of spec (nil for the others).
func (s *Session) explainShapes(ctx context.Context, spec kalla.MatchSpec, aliases [2]string) ([]*explainShape, error) {
	shapes := make([]*explainShape, len(spec.Rules))
	for k, rule := range spec.Rules {
		if !rule.Explain {
			continue
		}
		sh, err := s.explainShape(ctx, rule.SQL, aliases)
		if err != nil {
			return nil, fmt.Errorf("rule %q cannot be explained: %w", rule.Name, err)
		}
		shapes[k] = sh
	}
	return shapes, nil
}

// explain returns, for each side's unmatched rows (the queries unmatched,
// the sources without the keys matchedKeys), a query that adds why each
// row is unmatched and its nearest candidate. The work is done on narrow
// data wherever it can be: explain costs what its few large statements
// cost (logged at debug level, "explain step").
//
// For each explaining rule, each unmatched row's pairs with the other
// side's rows on the rule's key alone are ranked and the nearest is kept:
// fewest failed conditions, then the rule's order_by values, then the
// tolerance gaps, then the other row's key. The pairs are the rule's own
// (pairs[k], kept when the rule ran, see runPairs) or, for a rule that
// could not keep them, the unmatched rows joined again to the other side.
// A nearest pair that passes every condition means its other row was taken
// (by a better pair or an earlier rule, found in the taken keys) or, under
// ties "leave_unmatched", a tie. Over the rules, a row keeps the most
// telling explanation: tie, taken, outside_rule (fewest failed conditions),
// too_many_candidates, then the earliest rule. A row no rule finds a
// candidate for has no_candidate, or null_key when its key is NULL in every
// explaining rule.
func (s *Session) explain(ctx context.Context, spec kalla.MatchSpec, shapes []*explainShape, pairs []*rulePairs, aliases [2]string, srcKeys [2][]string, taken, matchedKeys, unmatched [2]string) ([2]string, error) {
	ty, err := s.newExplainTypes(ctx, spec, shapes)
	if err != nil {
		return unmatched, err
	}
	joinAgain := false
	for k, sh := range shapes {
		joinAgain = joinAgain || (sh != nil && pairs[k] == nil)
	}
	var out [2]string
	for side := range 2 {
		if joinAgain {
			// The unmatched rows are read by every rule joined again: an
			// anti-join of the whole source, computed once.
			kept := s.qualified(fmt.Sprintf("_kalla_unmatched_%d", side))
			if err := s.explainExec(ctx, "unmatched", fmt.Sprintf("CREATE TABLE %s AS %s", kept, unmatched[side])); err != nil {
				return unmatched, fmt.Errorf("keep the unmatched rows: %w", err)
			}
			unmatched[side] = "SELECT * FROM " + kept
		}
		uCols := make([]string, len(srcKeys[side]))
		for i := range uCols {
			uCols[i] = fmt.Sprintf("_kalla_u%d", i)
		}
		var entries []string
		var nullKey []string
		var nw *narrowExplain
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
			src := explainSource{unmatched: unmatched[side], pairs: pairs[k], matchedKeys: matchedKeys[side]}
			e, n, err := s.explainRule(ctx, k, rule, sh, side, aliases, srcKeys, taken, src, ty)
			if err != nil {
				return unmatched, fmt.Errorf("rule %q: %w", rule.Name, err)
			}
			entries, nw = append(entries, e...), n
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
			entries = append(entries, fmt.Sprintf(`SELECT %s, %s, %s, -2, _kalla_by FROM %s WHERE _kalla_by IN (%s)`,
				strings.Join(tSel, ", "), typed(kalla.ReasonSuggested, ty.reason), ty.filler(ty.byName("_kalla_by")), taken[side], ks))
		}
		nullReason := fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s END",
			strings.Join(nullKey, " AND "), typed(kalla.ReasonNullKey, ty.reason), typed(kalla.ReasonNoCandidate, ty.reason))
		cols := [6]string{"w._kalla_reason", "w._kalla_near_key", "w._kalla_near_rule", "w._kalla_near_failed", "w._kalla_near_distance", "w._kalla_near_taken_by"}
		var why string
		switch {
		case choose:
			why = s.qualified(fmt.Sprintf("_kalla_why_%d", side))
			if err := s.explainExec(ctx, "why", fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM (%s) QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _kalla_score, _kalla_rule_idx) = 1",
				why, strings.Join(entries, " UNION ALL "), strings.Join(uCols, ", "))); err != nil {
				return unmatched, fmt.Errorf("choose explanations: %w", err)
			}
		case nw != nil:
			// One rule explains from its pairs: the write joins its
			// nearest pairs and builds the explanations after the join.
			why, cols = nw.from, nw.cols
		default:
			// Nothing to choose: the entries are read once, by the write.
			why = "(" + strings.Join(entries, " UNION ALL ") + ")"
		}
		// The explained rows are not kept: the write streams them, and
		// the counts by reason read the written file (explainCounts).
		out[side] = fmt.Sprintf(`SELECT src.*, coalesce(%s, %s) AS %s,
  %s AS %s, %s AS %s, %s AS %s, %s AS %s, %s AS %s
FROM (%s) AS src LEFT JOIN %s AS w ON %s`,
			cols[0], nullReason, quoteIdent(kalla.ReasonColumn),
			cols[1], quoteIdent(kalla.NearKeyColumn), cols[2], quoteIdent(kalla.NearRuleColumn), cols[3], quoteIdent(kalla.NearFailedColumn),
			cols[4], quoteIdent(kalla.NearDistColumn), cols[5], quoteIdent(kalla.NearTakenByColumn),
			unmatched[side], why, joinOn("w", uCols, "src", srcKeys[side]))
	}
	// The pairs were read by the nearest-candidate steps: the writes do
	// not need them, and dropping them frees their memory first, unless
	// they hold a rule's matched keys.
	for _, p := range pairs {
		if p != nil && !p.matched {
			if err := s.exec(ctx, "DROP TABLE "+s.qualified(p.table)); err != nil {
				return out, fmt.Errorf("drop the rule's pairs: %w", err)
			}
		}
	}
	return out, nil
}

// explainCounts returns the count of each reason of the explained rows in
// from (a table expression).
func (s *Session) explainCounts(ctx context.Context, from string) (map[string]int64, error) {
	start := time.Now()
	rows, err := s.conn.QueryContext(ctx, fmt.Sprintf("SELECT %s, count(*) FROM %s GROUP BY 1", quoteIdent(kalla.ReasonColumn), from))
	if err != nil {
		return nil, fmt.Errorf("count reasons: %w", cleanError(err))
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var reason string
		var n int64
		if err := rows.Scan(&reason, &n); err != nil {
			return nil, err
		}
		m[reason] = n
	}
	if err := rows.Err(); err != nil {
		return nil, cleanError(err)
	}
	s.engine.logger.Debug("explain step", "step", "count", "seconds", time.Since(start).Seconds())
	return m, nil
}

// narrowExplain is one rule's explanations of one side as explainRule
// gives them for a write that needs no choice: the nearest pairs (from,
// read as w, keyed by _kalla_u*) and the explanation columns built from
// them (reason, or NULL for a row without a candidate; nearest key, rule,
// failed conditions, distances and taken by).
type narrowExplain struct {
	from string
	cols [6]string
}

// explainSource is where explainRule finds one side's unmatched rows'
// candidates: the rule's pairs table, less the pairs of matched rows;
// or, without one, the unmatched rows joined again to the other side.
type explainSource struct {
	unmatched, matchedKeys string
	pairs                  *rulePairs
}

// explainRule returns the SELECTs that give, for rule k, the explanations
// of side's unmatched rows: their nearest candidates, the rows with too
// many candidates, and the rule's ties; and, for a rule explained from its
// pairs, the same explanations in the narrow form (see narrowExplain).
func (s *Session) explainRule(ctx context.Context, k int, rule kalla.RuleSpec, sh *explainShape, side int, aliases [2]string, srcKeys [2][]string, taken [2]string, src explainSource, ty explainTypes) (entries []string, nw *narrowExplain, err error) {
	other := 1 - side
	uKey, oKey := sh.sideKeys(side), sh.sideKeys(other)
	alias := [2]string{quoteIdent(sh.aliases[0]), quoteIdent(sh.aliases[1])}
	var sel, uCols, cCols []string
	for i := range srcKeys[side] {
		uCols = append(uCols, fmt.Sprintf("_kalla_u%d", i))
	}
	for i := range srcKeys[other] {
		cCols = append(cCols, fmt.Sprintf("_kalla_c%d", i))
	}
	// The columns of a pair: from the pairs table, or computed on the
	// pairs joined again.
	p := src.pairs
	col := func(expr, kind string, i int) string {
		if p != nil {
			return "p." + pairCol(kind, i)
		}
		return "(" + expr + ")"
	}
	for _, sd := range []int{side, other} {
		for i, c := range srcKeys[sd] {
			expr := "(" + alias[sd] + "." + quoteIdent(c) + ")"
			if p != nil {
				expr = "p." + quoteIdent(p.pk[sd][i])
			}
			name := "_kalla_u"
			if sd == other {
				name = "_kalla_c"
			}
			sel = append(sel, fmt.Sprintf("%s AS %s%d", expr, name, i))
		}
	}
	var failed, failedText, dist, order []string
	for i, c := range sh.conds {
		sel = append(sel, fmt.Sprintf("%s AS _kalla_ok%d", col(c.sql, "ok", i), i))
		failed = append(failed, fmt.Sprintf("CASE WHEN _kalla_ok%d IS TRUE THEN 0 ELSE 1 END", i))
		failedText = append(failedText, fmt.Sprintf("CASE WHEN _kalla_ok%d IS TRUE THEN []::%s[] ELSE [%s] END", i, ty.cond, typed(c.text, ty.cond)))
	}
	for j, expr := range orderExprs(rule, sh) {
		if expr == "" {
			continue
		}
		o := rule.Exclusive.OrderBy[j]
		sel = append(sel, fmt.Sprintf("%s AS _kalla_o%d", col(expr, "o", j), j))
		order = append(order, orderTerm(fmt.Sprintf("_kalla_o%d", j), o.Desc))
		dist = append(dist, distance(quoteLiteral(o.Column), fmt.Sprintf("_kalla_o%d", j)))
	}
	for i, c := range sh.conds {
		if c.gap == "" {
			continue
		}
		sel = append(sel, fmt.Sprintf("%s AS _kalla_g%d", col(c.gap, "g", i), i))
		order = append(order, orderTerm(fmt.Sprintf("_kalla_g%d", i), false))
		dist = append(dist, distance(quoteLiteral(c.label), fmt.Sprintf("_kalla_g%d", i)))
	}
	failedSum := "0"
	if len(failed) > 0 {
		failedSum = strings.Join(failed, " + ")
	}
	rank := append([]string{"_kalla_failed"}, order...)
	rank = append(rank, cCols...)
	nearest := s.qualified(fmt.Sprintf("_kalla_near_%d_%d", k, side))
	over := fmt.Sprintf("OVER (PARTITION BY %s", strings.Join(uCols, ", "))
	var near, tooMany string
	name := typed(rule.Name, ty.rule)
	tooManyCols := fmt.Sprintf("%s, %s, 1000, %d", typed(kalla.ReasonTooManyCandidates, ty.reason), ty.filler(name), k)
	if p != nil {
		// The pairs of the unmatched rows, where the nearest is found
		// and the candidates are counted in one pass. Pairs of matched
		// rows do no harm (the unmatched rows are joined to their
		// explanations), but those that pass are many: they are left
		// out by the matched keys, or all of them when every row of a
		// pair that passes was taken (passedKept false). A pair that
		// fails needs no such filter: few fail.
		scored := func(from, where string) string {
			return fmt.Sprintf("SELECT * FROM (SELECT *, %s AS _kalla_failed FROM (SELECT %s FROM %s)) WHERE %s",
				failedSum, strings.Join(sel, ", "), from, where)
		}
		table := s.qualified(p.table) + " AS p"
		pairs := scored(table, "_kalla_failed > 0")
		if p.passedKept {
			pairs += " UNION ALL " + scored(fmt.Sprintf("%s ANTI JOIN %s AS m ON %s", table, src.matchedKeys, joinOn("p", p.pk[side], "m", srcKeys[side])), "_kalla_failed = 0")
		}
		if err := s.explainExec(ctx, "near", fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT *, count(*) %s) AS _kalla_n FROM (%s) QUALIFY row_number() %s ORDER BY %s) = 1",
			nearest, over, pairs, over, strings.Join(rank, ", "))); err != nil {
			return nil, nil, fmt.Errorf("find nearest candidates: %w", err)
		}
		near = fmt.Sprintf("(SELECT * FROM %s WHERE _kalla_n <= %d)", nearest, kalla.MaxExplainCandidates)
		tooMany = fmt.Sprintf("SELECT %s, %s FROM %s WHERE _kalla_n > %d", strings.Join(uCols, ", "), tooManyCols, nearest, kalla.MaxExplainCandidates)
	} else {
		// Candidates are counted only for the keys of unmatched rows:
		// the semi join leaves the GROUP BY a fraction of the other side.
		heavy := s.qualified(fmt.Sprintf("_kalla_heavy_%d_%d", k, side))
		if err := s.explainExec(ctx, "heavy", fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT %s FROM %s AS o SEMI JOIN (%s) AS u ON %s GROUP BY ALL HAVING count(*) > %d",
			heavy, strings.Join(prefixAll("o.", quoteAll(oKey)), ", "), s.qualified(aliases[other]), src.unmatched, joinOn("o", oKey, "u", uKey), kalla.MaxExplainCandidates)); err != nil {
			return nil, nil, fmt.Errorf("count candidates: %w", err)
		}
		// The side's unmatched rows that have few enough candidates, and
		// the other side's rows, under the names the rule gives them.
		from := [2]string{}
		from[side] = fmt.Sprintf("(SELECT u.* FROM (%s) AS u ANTI JOIN %s AS h ON %s)", src.unmatched, heavy, joinOn("u", uKey, "h", oKey))
		from[other] = s.qualified(aliases[other])
		keyEq := make([]string, len(sh.keys))
		for i, kp := range sh.keys {
			keyEq[i] = fmt.Sprintf("%s.%s = %s.%s", alias[0], quoteIdent(kp[0]), alias[1], quoteIdent(kp[1]))
		}
		pairs := fmt.Sprintf("SELECT %s FROM %s AS %s JOIN %s AS %s ON %s", strings.Join(sel, ", "), from[0], alias[0], from[1], alias[1], strings.Join(keyEq, " AND "))
		if err := s.explainExec(ctx, "near", fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT *, %s AS _kalla_failed FROM (%s) QUALIFY row_number() %s ORDER BY %s) = 1",
			nearest, failedSum, pairs, over, strings.Join(rank, ", "))); err != nil {
			return nil, nil, fmt.Errorf("find nearest candidates: %w", err)
		}
		near = nearest
		var uSel []string
		for i, c := range srcKeys[side] {
			uSel = append(uSel, fmt.Sprintf("u.%s AS _kalla_u%d", quoteIdent(c), i))
		}
		tooMany = fmt.Sprintf("SELECT %s, %s FROM (%s) AS u SEMI JOIN %s AS h ON %s",
			strings.Join(uSel, ", "), tooManyCols, src.unmatched, heavy, joinOn("u", uKey, "h", oKey))
	}
	nearKey := func(n string) string {
		parts := make([]string, len(cCols))
		for i, c := range cCols {
			parts[i] = fmt.Sprintf("CAST(%s.%s AS VARCHAR)", n, c)
		}
		if len(parts) == 1 {
			return parts[0]
		}
		return fmt.Sprintf("CAST([%s] AS VARCHAR)", strings.Join(parts, ", "))
	}
	passed := kalla.ReasonTaken
	if rule.Exclusive != nil && rule.Exclusive.LeaveTies {
		passed = kalla.ReasonTie
	}
	// reasonOf is the reason given by the nearest pair n whose other row
	// the rule t took (NULL: none).
	reasonOf := func(n, t string) string {
		return fmt.Sprintf("CASE WHEN %s._kalla_failed > 0 THEN %s WHEN %s._kalla_by IS NOT NULL THEN %s ELSE %s END",
			n, typed(kalla.ReasonOutsideRule, ty.reason), t, typed(kalla.ReasonTaken, ty.reason), typed(passed, ty.reason))
	}
	// Each item is a list of zero or one element, so that a list is their
	// concatenation: cheaper than filtering out NULLs with a lambda.
	listOf := func(items []string, typ string) string {
		if len(items) == 0 {
			return "CAST([] AS " + typ + "[])"
		}
		return "(" + strings.Join(items, " || ") + ")"
	}
	// The rule that took each nearest candidate's row, if any.
	takenBy := func(n string) string {
		return fmt.Sprintf("(SELECT %s, min(_kalla_by) AS _kalla_by FROM %s AS t SEMI JOIN %s AS n ON %s GROUP BY ALL)",
			strings.Join(quoteAll(srcKeys[other]), ", "), taken[other], n, joinOn("t", srcKeys[other], "n", cCols))
	}
	entries = []string{fmt.Sprintf(`SELECT %[1]s, %[2]s AS _kalla_reason,
  %[3]s AS _kalla_near_key, %[4]s AS _kalla_near_rule,
  %[5]s AS _kalla_near_failed, %[6]s AS _kalla_near_distance,
  %[7]s AS _kalla_near_taken_by,
  CASE WHEN n._kalla_failed > 0 THEN 10 + n._kalla_failed WHEN t._kalla_by IS NOT NULL THEN 1 ELSE 0 END AS _kalla_score, %[8]d AS _kalla_rule_idx
FROM %[9]s AS n LEFT JOIN %[10]s AS t ON %[11]s`,
		strings.Join(prefixAll("n.", uCols), ", "), reasonOf("n", "t"), nearKey("n"), name,
		listOf(failedText, ty.cond), listOf(dist, "VARCHAR"), ty.byName("t._kalla_by"), k,
		near, takenBy(near), joinOn("t", srcKeys[other], "n", cCols))}
	if p != nil {
		// The same explanations, for a write that joins the nearest pairs
		// themselves and builds the text after the join (a narrower join).
		w := func(expr string) string {
			return fmt.Sprintf("CASE WHEN w._kalla_n <= %d THEN %s END", kalla.MaxExplainCandidates, expr)
		}
		nw = &narrowExplain{
			from: fmt.Sprintf("(SELECT n.*, t._kalla_by FROM %s AS n LEFT JOIN %s AS t ON %s)", nearest, takenBy(nearest), joinOn("t", srcKeys[other], "n", cCols)),
			cols: [6]string{
				fmt.Sprintf("CASE WHEN w._kalla_n IS NULL THEN NULL WHEN w._kalla_n > %d THEN %s ELSE %s END", kalla.MaxExplainCandidates, typed(kalla.ReasonTooManyCandidates, ty.reason), reasonOf("w", "w")),
				w(nearKey("w")),
				fmt.Sprintf("CASE WHEN w._kalla_n IS NOT NULL THEN %s END", name),
				w(listOf(failedText, ty.cond)), w(listOf(dist, "VARCHAR")), w(ty.byName("w._kalla_by")),
			},
		}
	}

	// Rows whose key has too many candidates on the other side.
	entries = append(entries, tooMany)

	// The rule's ties on this side: its tied rows' keys, as the rule's
	// result named them.
	if x := rule.Exclusive; x != nil && x.LeaveTies && x.Sides[side] {
		km := rule.Keys(side)
		var tSel []string
		for i, c := range km.ResultColumns {
			tSel = append(tSel, fmt.Sprintf("%s AS _kalla_u%d", quoteIdent(c), i))
		}
		entries = append(entries, fmt.Sprintf(`SELECT %s, %s, %s, -1, %d FROM %s`,
			strings.Join(tSel, ", "), typed(kalla.ReasonTie, ty.reason), ty.filler(name), k, s.tiedTable(fmt.Sprintf("_kalla_candidates_%d", k), side)))
	}
	return entries, nw, nil
}

// distance is the list of the one distance "label = value" of the
// column col, or empty when its value is NULL.
func distance(label, col string) string {
	return fmt.Sprintf("CASE WHEN %[2]s IS NULL THEN []::VARCHAR[] ELSE [%[1]s || ' = ' || CAST(%[2]s AS VARCHAR)] END", label, col)
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
