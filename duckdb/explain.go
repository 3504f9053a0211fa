package duckdb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// explainShape is what explaining needs of a rule, read from DuckDB's
// parse tree of its match_sql: the join's table aliases, the equality
// conditions between the sources (the key the unmatched rows are joined on
// again), every other condition, and the select list.
type explainShape struct {
	// aliases are the names the rule gives the left and right source.
	aliases [2]string
	// keys are the key conditions' columns, (left, right).
	keys  [][2]string
	conds []explainCond
	// selects maps a result column's lower-cased name to its expression.
	selects map[string]string
	// node is the rule's parse tree and keyNodes its key conditions' nodes,
	// from which the rule's pairs statement is built (pairsSQL).
	node     map[string]any
	keyNodes []any
}

// explainCond is a condition of a rule other than its key.
type explainCond struct {
	// text is the condition as the user wrote it, for people; sql is
	// DuckDB's rendering of it, to evaluate.
	text, sql string
	// gap, for tolerance_match(a, b, t), is abs(a - b); label says so.
	gap, label string
}

// CheckExplain implements kalla.ExplainChecker.
func (s *Session) CheckExplain(ctx context.Context, sql string, aliases [2]string) error {
	_, err := s.explainShape(ctx, sql, aliases)
	return err
}

// explainShape analyses a rule for explaining. Only one SELECT joining the
// two sources with at least one equality between their columns can be
// explained.
func (s *Session) explainShape(ctx context.Context, query string, aliases [2]string) (*explainShape, error) {
	node, err := s.parseTree(ctx, query)
	if err != nil {
		return nil, err
	}
	a := &analysis{sides: map[string]int{strings.ToLower(aliases[0]): 0, strings.ToLower(aliases[1]): 1}}
	pairs, why := a.topLevel(node)
	if why != "" {
		return nil, fmt.Errorf("%s", strings.Replace(why, "is not split", "cannot be explained", 1))
	}
	from, _ := node["from_table"].(map[string]any)
	// JOIN … USING (c) is the key l.c = r.c: its rows are joined on it
	// again too, or a row would be explained by rows of another key.
	using, _ := from["using_columns"].([]any)
	if len(pairs) == 0 && len(using) == 0 {
		return nil, fmt.Errorf("it has no equality condition between the sources (such as l.ref = r.ref): explaining joins each unmatched row to the other side's rows on it")
	}
	sh := &explainShape{selects: map[string]string{}, node: node}
	for alias, side := range a.outer {
		sh.aliases[side] = alias
	}
	for _, u := range using {
		if c, ok := u.(string); ok {
			sh.keys = append(sh.keys, [2]string{c, c})
		}
	}
	all := append(conjuncts(from["condition"]), conjuncts(node["where_clause"])...)
	var starts []int
	for _, c := range all {
		starts = append(starts, minLocation(c))
	}
	named, err := s.selectAliases(ctx, node, aliases)
	if err != nil {
		return nil, err
	}
	for i, c := range all {
		if len(named) > 0 {
			c = inlineAliases(c, named, map[string]bool{}).(map[string]any)
		}
		if c["type"] == "COMPARE_EQUAL" {
			ls, lc, lok := a.columnOf(c["left"], a.outer)
			rs, rc, rok := a.columnOf(c["right"], a.outer)
			if lok && rok && ls != rs {
				if ls == 1 {
					lc, rc = rc, lc
				}
				sh.keys = append(sh.keys, [2]string{lc, rc})
				sh.keyNodes = append(sh.keyNodes, c)
				continue
			}
		}
		sql, err := s.render(ctx, c)
		if err != nil {
			return nil, err
		}
		cond := explainCond{sql: sql, text: sourceText(query, starts[i], starts)}
		if cond.text == "" {
			cond.text = sql
		}
		if fn, _ := c["function_name"].(string); c["class"] == "FUNCTION" && strings.EqualFold(fn, "tolerance_match") {
			if args, _ := c["children"].([]any); len(args) == 3 {
				x, err1 := s.render(ctx, args[0].(map[string]any))
				y, err2 := s.render(ctx, args[1].(map[string]any))
				if err1 == nil && err2 == nil {
					cond.gap = fmt.Sprintf("abs((%s) - (%s))", x, y)
					cond.label = fmt.Sprintf("abs(%s - %s)", x, y)
				}
			}
		}
		sh.conds = append(sh.conds, cond)
	}
	list, _ := node["select_list"].([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		if m == nil {
			continue
		}
		name, _ := m["alias"].(string)
		if name == "" && m["class"] == "COLUMN_REF" {
			if names, _ := m["column_names"].([]any); len(names) > 0 {
				name, _ = names[len(names)-1].(string)
			}
		}
		if name == "" {
			continue
		}
		expr := maps(m)
		expr["alias"] = ""
		sql, err := s.render(ctx, expr)
		if err != nil {
			return nil, err
		}
		sh.selects[strings.ToLower(name)] = sql
	}
	return sh, nil
}

// parseTree returns the SELECT node of query's one statement, numbers kept
// exact so that its parts can be rendered back (render).
func (s *Session) parseTree(ctx context.Context, query string) (map[string]any, error) {
	var raw string
	if err := s.conn.QueryRowContext(ctx, "SELECT json_serialize_sql($1::VARCHAR)::VARCHAR", query).Scan(&raw); err != nil {
		return nil, fmt.Errorf("parse: %w", cleanError(err))
	}
	var tree struct {
		Error      bool             `json:"error"`
		Statements []map[string]any `json:"statements"`
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil || tree.Error || len(tree.Statements) != 1 {
		return nil, fmt.Errorf("it could not be analysed")
	}
	node, _ := tree.Statements[0]["node"].(map[string]any)
	if node == nil {
		return nil, fmt.Errorf("it could not be analysed")
	}
	return node, nil
}

// render turns an expression of a parse tree back into SQL, through
// DuckDB's own json_deserialize_sql of `SELECT <expr>`.
func (s *Session) render(ctx context.Context, expr map[string]any) (string, error) {
	stmt := map[string]any{"error": false, "statements": []any{map[string]any{
		"named_param_map": []any{},
		"node": map[string]any{
			"type": "SELECT_NODE", "modifiers": []any{}, "cte_map": map[string]any{"map": []any{}},
			"select_list":  []any{expr},
			"from_table":   map[string]any{"type": "EMPTY", "alias": "", "sample": nil, "query_location": json.Number("18446744073709551615")},
			"where_clause": nil, "group_expressions": []any{}, "group_sets": []any{},
			"aggregate_handling": "STANDARD_HANDLING", "having": nil, "sample": nil, "qualify": nil,
		},
	}}}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(stmt); err != nil {
		return "", err
	}
	var sql string
	if err := s.conn.QueryRowContext(ctx, "SELECT json_deserialize_sql($1::JSON)", buf.String()).Scan(&sql); err != nil {
		return "", fmt.Errorf("render a condition: %w", cleanError(err))
	}
	out, ok := strings.CutPrefix(sql, "SELECT ")
	if !ok {
		return "", fmt.Errorf("render a condition: unexpected %q", sql)
	}
	return out, nil
}

// maps copies a parse-tree node one level deep.
func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// minLocation is the smallest query_location in a parse-tree node: where
// the text of the expression starts (an operator node's own location is
// that of its operator).
func minLocation(v any) int {
	best := -1
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if n, ok := x["query_location"].(json.Number); ok {
				if i, err := n.Int64(); err == nil && i >= 0 && i < 1<<40 && (best < 0 || int(i) < best) {
					best = int(i)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return best
}

// trailingKeyword is what may join a condition to the next one: AND,
// WHERE, and the opening parentheses of a next condition written in
// parentheses ("... AND (a OR b)").
var trailingKeyword = regexp.MustCompile(`(?is)\s*(\bAND|\bWHERE|;|\()\s*$`)

// sourceText cuts a condition's text out of query: from its start to the
// next condition's start, without the keyword that joins them, balanced
// in parentheses. It returns "" when it cannot.
func sourceText(query string, start int, starts []int) string {
	if start < 0 || start >= len(query) {
		return ""
	}
	end := len(query)
	for _, s := range starts {
		if s > start && s < end {
			end = s
		}
	}
	text := strings.TrimSpace(query[start:end])
	for {
		t := trailingKeyword.ReplaceAllString(text, "")
		t = strings.TrimSpace(t)
		if t == text {
			break
		}
		text = t
	}
	for strings.Count(text, ")") > strings.Count(text, "(") && strings.HasSuffix(text, ")") {
		text = strings.TrimSpace(strings.TrimSuffix(text, ")"))
		for {
			t := strings.TrimSpace(trailingKeyword.ReplaceAllString(text, ""))
			if t == text {
				break
			}
			text = t
		}
	}
	if strings.Count(text, "(") != strings.Count(text, ")") || text == "" {
		return ""
	}
	return text
}

// sideKeys returns the key columns of side in the shape's key pairs.
func (sh *explainShape) sideKeys(side int) []string {
	var out []string
	for _, k := range sh.keys {
		out = append(out, k[side])
	}
	return out
}
