package duckdb

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// PlanSplit decides how a job can be split from DuckDB's own parse tree of
// match_sql (json_serialize_sql), so that what is recognised is exactly
// what DuckDB will run. Only shapes proven safe are split:
//
//   - one SELECT over `left JOIN right` (INNER or CROSS, no DISTINCT, LIMIT,
//     HAVING, window or top-level aggregate, no CTE or set operation). A
//     GROUP BY without an aggregate only folds equal result rows, and a
//     result row holds both sources' primary keys, so equal rows come from
//     the same two rows, in the same partition;
//   - a top-level conjunct `l.a = r.b` between plain columns of compatible
//     types makes a's and b's hash the partition key;
//   - a subquery that reads a source must be correlated on that source's
//     partition key with an outer partition key (`p2.b = l.a`), so all the
//     rows it reads are in the same partition as the outer row.
//
// A job with rules is partitioned on an equality pair every rule has (and
// each rule must be safe on it). Without an equality key, a plain match_sql
// (no rules, no exclusive) with no source subquery is broadcast. A
// carry-over job is partitioned only on a pair of primary-key columns
// (carryKey) and never broadcast. Anything else runs whole on one executor.
func (s *Session) PlanSplit(ctx context.Context, job *kalla.Job) (distributed.SplitPlan, error) {
	single := func(format string, args ...any) (distributed.SplitPlan, error) {
		return distributed.SplitPlan{Mode: distributed.SplitSingle, Reason: fmt.Sprintf(format, args...)}, nil
	}
	if job.Confirmed != "" {
		return single("a job with confirmed pairs runs whole")
	}
	carry := job.CarryOver != nil
	if carry {
		for _, src := range job.Sources {
			if cs := s.carry[src.Alias]; cs != nil && cs.retyped {
				return single("carry_over: a column of %q has no value today and takes its type from the carried rows, which the stage tasks of a split job do not read", src.Alias)
			}
		}
	}
	aggs, err := s.aggregateNames(ctx)
	if err != nil {
		return distributed.SplitPlan{}, err
	}
	rules := job.RuleList()
	type parsed struct {
		a     *analysis
		node  map[string]any
		pairs [][2]string
	}
	var ps []parsed
	for i, rule := range rules {
		name := "match_sql"
		if job.HasRules() {
			name = fmt.Sprintf("rule %q", rule.Name)
		}
		var raw string
		if err := s.conn.QueryRowContext(ctx, "SELECT json_serialize_sql($1::VARCHAR)::VARCHAR", rule.MatchSQL).Scan(&raw); err != nil {
			return distributed.SplitPlan{}, fmt.Errorf("parse %s: %w", job.RuleField(i, "match_sql"), err)
		}
		var tree struct {
			Error      bool             `json:"error"`
			Statements []map[string]any `json:"statements"`
		}
		if err := json.Unmarshal([]byte(raw), &tree); err != nil || tree.Error || len(tree.Statements) != 1 {
			return single("%s could not be analysed", name)
		}
		a := &analysis{
			sides: map[string]int{strings.ToLower(job.Left().Alias): 0, strings.ToLower(job.Right().Alias): 1},
			aggs:  aggs,
		}
		node, _ := tree.Statements[0]["node"].(map[string]any)
		pairs, why := a.topLevel(node)
		if why != "" {
			if job.HasRules() {
				why = name + ": " + why
			}
			return single("%s", why)
		}
		ps = append(ps, parsed{a: a, node: node, pairs: pairs})
	}
	// A key every rule joins on keeps every candidate pair of every rule
	// inside one partition, so the waterfall and each exclusive assignment
	// of a partition are those of the whole job.
	var notKey string
	for _, p := range ps[0].pairs {
		hash, ok := s.keyHashes(job, p)
		if !ok {
			continue
		}
		shared := true
		for _, q := range ps[1:] {
			if !slices.ContainsFunc(q.pairs, func(o [2]string) bool { return strings.EqualFold(o[0], p[0]) && strings.EqualFold(o[1], p[1]) }) {
				shared = false
				break
			}
		}
		if !shared {
			continue
		}
		if carry {
			if why := carryKey(job, p); why != "" {
				notKey = cmp.Or(notKey, why)
				continue
			}
		}
		for i, q := range ps {
			q.a.key = p
			if why := q.a.safe(q.node, nil, true); why != "" {
				if job.HasRules() {
					why = fmt.Sprintf("rule %q: %s", rules[i].Name, why)
				}
				return single("%s", why)
			}
		}
		return distributed.SplitPlan{Mode: distributed.SplitPartition, Reason: fmt.Sprintf("equality key %s = %s", p[0], p[1]), Hash: hash}, nil
	}
	// Only a plain match_sql job is broadcast: every match task sees all
	// rows of the broadcast side, so a row of it could be taken by an
	// exclusive rule in two partitions, a later rule would still see rows
	// an earlier one took in another partition, and each partition would
	// count the broadcast side again in the per-rule counts.
	switch {
	case notKey != "":
		return single("%s", notKey)
	case job.HasRules() && len(rules) > 1:
		return single("the rules share no equality key between the sources: every rule must join on one same pair of columns (l.a = r.b) for the job to be partitioned")
	case job.HasRules():
		return single("rule %q has no equality key between the sources (l.a = r.b): a job with rules is partitioned on such a key or runs whole", rules[0].Name)
	case rules[0].Exclusive != nil || job.ExplainsAny():
		return single("an exclusive or explained match_sql without a usable equality key between the sources is not split: each row's candidates must be in one partition")
	case carry:
		// Every match task would carry the broadcast side's rows again.
		return single("carry_over partitions only on an equality key between primary-key columns of the sources (l.id = r.id), and match_sql has none; a carry-over job is never broadcast")
	}
	a, node := ps[0].a, ps[0].node
	if why := a.safe(node, nil, true); why != "" {
		return single("%s", why)
	}
	if a.sourceSubquery {
		return single("no equality key between the sources and a subquery reads a source")
	}
	var hash [2]string
	for i, src := range job.Sources {
		cols := make([]string, 0)
		for _, k := range job.KeysOf(src.Alias) {
			cols = append(cols, quoteIdent(k))
		}
		hash[i] = "hash(" + strings.Join(cols, ", ") + ")"
	}
	return distributed.SplitPlan{Mode: distributed.SplitBroadcast, Reason: "no equality key between the sources: the smaller is broadcast", Hash: hash}, nil
}

// carryKey says why the key pair p (left column, right column) cannot
// partition a carry-over job, "" when it can. A carried row gives way to
// today's row of the same primary key, so both must be in one partition:
// they are when the partition column is a primary-key column of its side,
// and the carried rows are read in today's types, which hash alike.
func carryKey(job *kalla.Job, p [2]string) string {
	for i, src := range job.Sources {
		if !slices.ContainsFunc(job.KeysOf(src.Alias), func(k string) bool { return strings.EqualFold(k, p[i]) }) {
			return fmt.Sprintf("carry_over partitions only on a primary-key column; %q is not one of %s's primary keys", p[i], src.Alias)
		}
	}
	return ""
}

func (s *Session) aggregateNames(ctx context.Context) (map[string]bool, error) {
	rows, err := s.conn.QueryContext(ctx, "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type = 'aggregate'")
	if err != nil {
		return nil, fmt.Errorf("list aggregate functions: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// keyHashes returns the partition expressions for the key pair p (left
// column, right column), or false when equal values of their types might
// hash differently. DuckDB hashes every integer type alike, and values of
// one type alike; DECIMALs of different scales are cast to one type. Floats
// are left out (0.0 = -0.0 but their hashes differ).
func (s *Session) keyHashes(job *kalla.Job, p [2]string) ([2]string, bool) {
	var types [2]string
	for i, src := range job.Sources {
		t := s.tables[src.Alias]
		if t == nil {
			return [2]string{}, false
		}
		found := false
		for k, c := range t.cols {
			if strings.EqualFold(c.Name, p[i]) {
				types[i], found = strings.ToUpper(strings.ReplaceAll(t.types[k], " ", "")), true
			}
		}
		if !found {
			return [2]string{}, false
		}
	}
	col := [2]string{quoteIdent(p[0]), quoteIdent(p[1])}
	isFloat := func(t string) bool { return t == "DOUBLE" || t == "FLOAT" || t == "REAL" }
	isInt := func(t string) bool {
		switch t {
		case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT":
			return true
		}
		return false
	}
	switch {
	case isFloat(types[0]) || isFloat(types[1]):
		return [2]string{}, false
	case types[0] == types[1] || (isInt(types[0]) && isInt(types[1])):
		return [2]string{"hash(" + col[0] + ")", "hash(" + col[1] + ")"}, true
	}
	// DECIMAL and integers: one DECIMAL type that holds both exactly.
	intDigits, scale := 0, 0
	for _, t := range types {
		var w, sc int
		switch {
		case isInt(t):
			w = 20
			if t == "HUGEINT" {
				w = 39
			}
		case strings.HasPrefix(t, "DECIMAL("):
			if _, err := fmt.Sscanf(t, "DECIMAL(%d,%d)", &w, &sc); err != nil {
				return [2]string{}, false
			}
		default:
			return [2]string{}, false
		}
		intDigits, scale = max(intDigits, w-sc), max(scale, sc)
	}
	if intDigits+scale > 38 {
		return [2]string{}, false
	}
	typ := fmt.Sprintf("DECIMAL(%d,%d)", intDigits+scale, scale)
	return [2]string{fmt.Sprintf("hash(CAST(%s AS %s))", col[0], typ), fmt.Sprintf("hash(CAST(%s AS %s))", col[1], typ)}, true
}

// analysis walks match_sql's parse tree.
type analysis struct {
	sides map[string]int // source table name → side
	aggs  map[string]bool
	// outer maps the top-level table aliases to their sides.
	outer map[string]int
	// key is the chosen partition key (left column, right column).
	key [2]string
	// sourceSubquery is set when some subquery reads a source.
	sourceSubquery bool
}

// topLevel checks the outer SELECT's shape and returns its equality pairs.
func (a *analysis) topLevel(node map[string]any) ([][2]string, string) {
	if node == nil || node["type"] != "SELECT_NODE" {
		return nil, "match_sql is not a plain SELECT (set operation or other)"
	}
	if why := plainSelect(node); why != "" {
		return nil, why
	}
	from, _ := node["from_table"].(map[string]any)
	if from == nil || from["type"] != "JOIN" {
		return nil, "match_sql does not join the two sources"
	}
	if jt := from["join_type"]; jt != "INNER" && jt != nil {
		return nil, fmt.Sprintf("a %v join is not split", jt)
	}
	if rt := from["ref_type"]; rt != "REGULAR" && rt != "CROSS" {
		return nil, fmt.Sprintf("a %v join is not split", rt)
	}
	a.outer = map[string]int{}
	for _, k := range []string{"left", "right"} {
		t, _ := from[k].(map[string]any)
		side, alias, ok := a.baseTable(t)
		if !ok {
			return nil, "the join's operands are not the two sources"
		}
		a.outer[alias] = side
	}
	if len(a.outer) != 2 {
		return nil, "the join's operands are not the two sources"
	}
	seen := map[int]bool{}
	for _, s := range a.outer {
		seen[s] = true
	}
	if len(seen) != 2 {
		return nil, "the join reads one source twice"
	}
	var pairs [][2]string
	for _, c := range append(conjuncts(from["condition"]), conjuncts(node["where_clause"])...) {
		if c["type"] != "COMPARE_EQUAL" {
			continue
		}
		ls, lc, lok := a.columnOf(c["left"], a.outer)
		rs, rc, rok := a.columnOf(c["right"], a.outer)
		if !lok || !rok || ls == rs {
			continue
		}
		if ls == 1 {
			lc, rc = rc, lc
		}
		pairs = append(pairs, [2]string{lc, rc})
	}
	return pairs, ""
}

// plainSelect rejects the clauses that work on the whole result.
func plainSelect(node map[string]any) string {
	if m, _ := node["modifiers"].([]any); len(m) > 0 {
		return "match_sql has DISTINCT, ORDER BY or LIMIT"
	}
	if cte, _ := node["cte_map"].(map[string]any); cte != nil {
		if m, _ := cte["map"].([]any); len(m) > 0 {
			return "match_sql has a WITH clause"
		}
	}
	for _, k := range []string{"having", "qualify", "sample"} {
		if node[k] != nil {
			return "match_sql has " + strings.ToUpper(k)
		}
	}
	return ""
}

func (a *analysis) baseTable(t map[string]any) (side int, alias string, ok bool) {
	if t == nil || t["type"] != "BASE_TABLE" {
		return 0, "", false
	}
	if s, _ := t["schema_name"].(string); s != "" {
		return 0, "", false
	}
	name, _ := t["table_name"].(string)
	side, ok = a.sides[strings.ToLower(name)]
	alias, _ = t["alias"].(string)
	if alias == "" {
		alias = name
	}
	return side, strings.ToLower(alias), ok
}

// columnOf resolves a qualified column reference against scope.
func (a *analysis) columnOf(e any, scope map[string]int) (side int, col string, ok bool) {
	m, _ := e.(map[string]any)
	if m == nil || m["class"] != "COLUMN_REF" {
		return 0, "", false
	}
	names, _ := m["column_names"].([]any)
	if len(names) != 2 {
		return 0, "", false
	}
	alias, _ := names[0].(string)
	col, _ = names[1].(string)
	side, ok = scope[strings.ToLower(alias)]
	return side, col, ok
}

// conjuncts flattens a tree of ANDs.
func conjuncts(e any) []map[string]any {
	m, _ := e.(map[string]any)
	if m == nil {
		return nil
	}
	if m["type"] == "CONJUNCTION_AND" {
		var out []map[string]any
		for _, c := range m["children"].([]any) {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []map[string]any{m}
}

// safe walks v and returns why it is not partition-safe, or "". scope maps
// the aliases of enclosing source tables to their sides; top is true
// outside any subquery.
func (a *analysis) safe(v any, scope map[string]int, top bool) string {
	if scope == nil {
		scope = a.outer
	}
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			if why := a.safe(c, scope, top); why != "" {
				return why
			}
		}
	case map[string]any:
		switch {
		case x["class"] == "WINDOW":
			return "match_sql uses a window function"
		case x["class"] == "FUNCTION" && top && a.aggs[strings.ToLower(fmt.Sprint(x["function_name"]))]:
			return fmt.Sprintf("match_sql aggregates (%v) over the whole join", x["function_name"])
		case x["class"] == "SUBQUERY":
			sub, _ := x["subquery"].(map[string]any)
			node, _ := sub["node"].(map[string]any)
			if why := a.subquery(node, scope); why != "" {
				return why
			}
			return a.safe(x["child"], scope, top)
		case x["type"] == "BASE_TABLE" && top:
			// The top-level join's own operands, checked by topLevel.
			return ""
		}
		for k, c := range x {
			if k == "from_table" && top {
				// The join's operands were checked by topLevel; its
				// condition may hold subqueries.
				if m, _ := c.(map[string]any); m != nil {
					if why := a.safe(m["condition"], scope, top); why != "" {
						return why
					}
				}
				continue
			}
			if why := a.safe(c, scope, top); why != "" {
				return why
			}
		}
	}
	return ""
}

// subquery checks a subquery: if it reads a source, it must read only that
// source, correlated on the partition key.
func (a *analysis) subquery(node map[string]any, scope map[string]int) string {
	if !readsSource(node, a.sides) {
		return a.safe(node, scope, false)
	}
	a.sourceSubquery = true
	if node == nil || node["type"] != "SELECT_NODE" {
		return "a subquery over a source is not a plain SELECT"
	}
	if m, _ := node["modifiers"].([]any); len(m) > 0 {
		return "a subquery over a source has DISTINCT, ORDER BY or LIMIT"
	}
	from, _ := node["from_table"].(map[string]any)
	side, alias, ok := a.baseTable(from)
	if !ok {
		return "a subquery reads a source together with other tables"
	}
	if a.key == ([2]string{}) {
		return "a subquery reads a source and there is no partition key"
	}
	correlated := false
	for _, c := range conjuncts(node["where_clause"]) {
		if c["type"] != "COMPARE_EQUAL" {
			continue
		}
		for _, order := range [][2]string{{"left", "right"}, {"right", "left"}} {
			is, ic, iok := a.columnOf(c[order[0]], map[string]int{alias: side})
			os, oc, ook := a.columnOf(c[order[1]], scope)
			if iok && ook && strings.EqualFold(ic, a.key[is]) && strings.EqualFold(oc, a.key[os]) {
				correlated = true
			}
		}
	}
	if !correlated {
		return fmt.Sprintf("a subquery over %s is not correlated on the partition key %s", alias, a.key[side])
	}
	inner := map[string]int{alias: side}
	for k, v := range scope {
		if k != alias {
			inner[k] = v
		}
	}
	for k, c := range node {
		if k == "from_table" {
			continue
		}
		if why := a.safe(c, inner, false); why != "" {
			return why
		}
	}
	return ""
}

// readsSource reports whether v refers to a source table anywhere.
func readsSource(v any, sides map[string]int) bool {
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			if readsSource(c, sides) {
				return true
			}
		}
	case map[string]any:
		if x["type"] == "BASE_TABLE" {
			if _, ok := sides[strings.ToLower(fmt.Sprint(x["table_name"]))]; ok {
				return true
			}
		}
		for _, c := range x {
			if readsSource(c, sides) {
				return true
			}
		}
	}
	return false
}
