package duckdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kalla-dev/kalla"
)

// pairsPrefix starts the names of the columns a rule's pairs table adds to
// the rule's own select list.
const pairsPrefix = "_kalla_p_"

// explainFromPairs turns runPairs on; tests turn it off to compare with
// the unmatched rows joined again.
var explainFromPairs = true

// pairsName is the name of the table of rule k's pairs.
func pairsName(k int) string {
	return fmt.Sprintf("_kalla_pairs_%d", k)
}

// pairCol names the columns of a pairs table beyond the rule's select
// list: both sides' primary-key columns (l0…, r0…, unless the select list
// has them), each condition's outcome (ok0…), each tolerance gap (g0…) and
// each order_by value (o0…).
func pairCol(kind string, i int) string {
	return fmt.Sprintf("%s%s%d", pairsPrefix, kind, i)
}

// rulePairs is the table of an explained rule's pairs (see runPairs).
type rulePairs struct {
	table string
	// pk names each side's primary-key columns in the table.
	pk [2][]string
	// passedKept is set when some pairs that pass every condition may
	// have a row no rule took (see explainRule).
	passedKept bool
	// matched is set when the rule's kept pairs are a view over the
	// table, which the taken keys read until the job is done.
	matched bool
}

// runPairs runs an explained rule k once as a join on its key alone and
// keeps every pair in the table pairsName(k), with the rule's other
// conditions, tolerance gaps and order_by values as columns; the rule's
// candidates, named candName, are the pairs that pass every condition
// (restricted, when remainder is set, to the rows no earlier rule took).
// Explaining then reads the unmatched rows' nearest candidates from these
// pairs (explainRule) instead of joining them to the other side again.
//
// The pairs are those of the whole sources, not of the rows left for rule
// k: a row's nearest candidate may be one an earlier rule took, which
// explain names. It returns the kind of object candName is ("VIEW" or
// "TABLE"), or "" when the rule must run as written: its select list or
// conditions must not be evaluated over pairs that fail its conditions
// (window functions, aggregates, subqueries), the pairs statement failed
// (an expression the conditions guarded, such as a CAST), or its key
// joins more pairs than maxPairs.
func (s *Session) runPairs(ctx context.Context, k int, remainder bool, rule kalla.RuleSpec, sh *explainShape, srcKeys [2][]string, taken [2]string, candName string) (string, *rulePairs, error) {
	if !explainFromPairs {
		return "", nil, nil
	}
	q, extra, pk, err := s.pairsSQL(ctx, rule, sh, srcKeys)
	if err != nil || q == "" {
		return "", nil, err
	}
	var rows int64
	for _, alias := range []string{rule.Left.Alias, rule.Right.Alias} {
		n, err := s.rowsOf(ctx, alias)
		if err != nil {
			return "", nil, err
		}
		rows += n
	}
	limit := maxPairs(rows)
	pairs := s.qualified(pairsName(k))
	if err := s.explainExec(ctx, "pairs", fmt.Sprintf("CREATE TABLE %s AS %s LIMIT %d", pairs, q, limit+1)); err != nil {
		s.engine.logger.Debug("explain: the rule's pairs failed, it runs as written", "rule", rule.Name, "error", err)
		return "", nil, s.exec(ctx, "DROP TABLE IF EXISTS "+pairs)
	}
	if n, err := s.count(ctx, pairs); err != nil || n > limit {
		s.engine.logger.Debug("explain: the rule's key joins too many pairs, it runs as written", "rule", rule.Name, "limit", limit)
		return "", nil, errors.Join(err, s.exec(ctx, "DROP TABLE "+pairs))
	}
	cand := fmt.Sprintf("SELECT * FROM %s AS p", pairs)
	if len(extra) > 0 {
		cand = fmt.Sprintf("SELECT * EXCLUDE (%s) FROM %s AS p", strings.Join(quoteAll(extra), ", "), pairs)
	}
	if remainder {
		for side, keys := range srcKeys {
			t := fmt.Sprintf("t%d", side)
			cand += fmt.Sprintf(" ANTI JOIN %s AS %s ON %s", taken[side], t, joinOn("p", pk[side], t, keys))
		}
	}
	var ok []string
	for i := range sh.conds {
		ok = append(ok, "p."+pairCol("ok", i))
	}
	if len(ok) > 0 {
		cand += " WHERE " + strings.Join(ok, " AND ")
	}
	// Over the rows left for a later rule the candidates are kept: the
	// taken keys they are filtered by grow once the rule is done.
	kind := "VIEW"
	if remainder && rule.Exclusive == nil {
		kind = "TABLE"
	}
	if err := s.explainExec(ctx, "candidates", fmt.Sprintf("CREATE %s %s AS %s", kind, s.qualified(candName), cand)); err != nil {
		return "", nil, fmt.Errorf("keep the rule's candidates: %w", err)
	}
	// A rule that keeps every candidate, over all the rows, takes every
	// row of a pair that passes.
	return kind, &rulePairs{table: pairsName(k), pk: pk, passedKept: remainder || rule.Exclusive != nil, matched: kind == "VIEW" && rule.Exclusive == nil}, nil
}

// maxPairs is the most pairs an explained rule's key may join in sources
// of rows rows in all before it runs as written instead (see runPairs).
// Keeping the pairs pays when the key nearly identifies a row; a key that
// many rows on both sides share (a currency, a customer) joins many times
// more pairs than the rule keeps, and keeping them all cost 34 times the
// rule as written (4,000 rows a side, one key: 16M pairs, 9 s against
// 0.28 s). The rows up to the limit are all the cost of finding out.
func maxPairs(rows int64) int64 {
	return 2*rows + 100_000
}

// pairsSQL returns the statement of rule's pairs (see runPairs), the
// names of the columns it adds and of each side's primary-key columns in
// it, built by editing the rule's parse tree: its key conditions become
// the join's only condition, and the added columns follow its select
// list. It returns "" when the rule must run as written.
func (s *Session) pairsSQL(ctx context.Context, rule kalla.RuleSpec, sh *explainShape, srcKeys [2][]string) (string, []string, [2][]string, error) {
	var pk [2][]string
	aggs, err := s.aggregateNames(ctx)
	if err != nil {
		return "", nil, pk, err
	}
	if !pairable(sh.node, aggs) {
		return "", nil, pk, nil
	}
	var items, names []string
	add := func(expr, name string) {
		items = append(items, fmt.Sprintf("(%s) AS %s", expr, name))
		names = append(names, name)
	}
	// A primary-key column the select list already has, under a name of
	// its own, is not added again.
	listed := listedColumns(sh)
	for side, keys := range srcKeys {
		for i, c := range keys {
			if name, ok := listed[[2]string{sh.aliases[side], strings.ToLower(c)}]; ok {
				pk[side] = append(pk[side], name)
				continue
			}
			pk[side] = append(pk[side], pairCol(string("lr"[side]), i))
			add(quoteIdent(sh.aliases[side])+"."+quoteIdent(c), pairCol(string("lr"[side]), i))
		}
	}
	for i, c := range sh.conds {
		add(c.sql, pairCol("ok", i))
		if c.gap != "" {
			add(c.gap, pairCol("g", i))
		}
	}
	for j, expr := range orderExprs(rule, sh) {
		if expr != "" {
			add(expr, pairCol("o", j))
		}
	}
	node := maps(sh.node)
	if len(items) > 0 {
		extra, err := s.parseTree(ctx, "SELECT "+strings.Join(items, ", "))
		if err != nil {
			return "", nil, pk, err
		}
		list, _ := node["select_list"].([]any)
		more, _ := extra["select_list"].([]any)
		node["select_list"] = append(append([]any{}, list...), more...)
	}
	var key any
	switch len(sh.keyNodes) {
	case 0: // JOIN … USING alone
	case 1:
		key = sh.keyNodes[0]
	default:
		key = map[string]any{"class": "CONJUNCTION", "type": "CONJUNCTION_AND", "alias": "",
			"query_location": json.Number("18446744073709551615"), "children": sh.keyNodes}
	}
	from := maps(node["from_table"].(map[string]any))
	node["from_table"] = from
	// A join USING columns keeps them (they are key columns, and they
	// make the star's columns): a condition beside them would be dropped.
	if using, _ := from["using_columns"].([]any); from["ref_type"] == "CROSS" || len(using) > 0 {
		node["where_clause"] = key
	} else {
		from["condition"] = key
		node["where_clause"] = nil
	}
	stmt := map[string]any{"error": false, "statements": []any{map[string]any{"named_param_map": []any{}, "node": node}}}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(stmt); err != nil {
		return "", nil, pk, err
	}
	var q string
	if err := s.conn.QueryRowContext(ctx, "SELECT json_deserialize_sql($1::JSON)", buf.String()).Scan(&q); err != nil {
		return "", nil, pk, fmt.Errorf("build the rule's pairs: %w", cleanError(err))
	}
	return q, names, pk, nil
}

// listedColumns maps (alias, lower-cased column) to the result name of
// the rule's select items that are a source column as it is, when that
// name is the only result column of its name (no * either).
func listedColumns(sh *explainShape) map[[2]string]string {
	out := map[[2]string]string{}
	seen := map[string]int{}
	list, _ := sh.node["select_list"].([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		if m == nil || m["class"] == "STAR" {
			return nil
		}
		names, _ := m["column_names"].([]any)
		name, _ := m["alias"].(string)
		if name == "" && len(names) > 0 {
			name, _ = names[len(names)-1].(string)
		}
		seen[strings.ToLower(name)]++
		if m["class"] == "COLUMN_REF" && len(names) == 2 {
			alias, _ := names[0].(string)
			col, _ := names[1].(string)
			out[[2]string{strings.ToLower(alias), strings.ToLower(col)}] = name
		}
	}
	for k, name := range out {
		if seen[strings.ToLower(name)] > 1 {
			delete(out, k)
		}
	}
	return out
}

// pairable reports whether every expression of the rule's parse tree node
// gives each pair the same value whatever other pairs there are: no GROUP
// BY, window function, aggregate or subquery. Only then may the select list be
// evaluated over all the pairs of the key and filtered after.
func pairable(node map[string]any, aggs map[string]bool) bool {
	// GROUP BY, even without an aggregate, makes one row of several
	// pairs: the pairs' added columns would split or refuse its groups.
	// (plainSelect reads it under another name, and never sees it.)
	if g, _ := node["group_expressions"].([]any); len(g) > 0 || node["aggregate_handling"] == "FORCE_AGGREGATES" {
		return false
	}
	ok := true
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, c := range x {
				walk(c)
			}
		case map[string]any:
			switch {
			case x["class"] == "WINDOW", x["class"] == "SUBQUERY":
				ok = false
				return
			case x["class"] == "FUNCTION" && aggs[strings.ToLower(fmt.Sprint(x["function_name"]))]:
				ok = false
				return
			}
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(node)
	return ok
}

// orderExprs returns, for each of an exclusive rule's order_by columns,
// its expression in the rule's select list ("" when the list does not name
// it); nil for a rule that is not exclusive.
func orderExprs(rule kalla.RuleSpec, sh *explainShape) []string {
	x := rule.Exclusive
	if x == nil {
		return nil
	}
	out := make([]string, len(x.OrderBy))
	for j, o := range x.OrderBy {
		out[j] = sh.selects[strings.ToLower(o.Column)]
	}
	return out
}
