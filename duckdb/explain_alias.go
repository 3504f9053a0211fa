package duckdb

import (
	"context"
	"fmt"
	"strings"
)

// selectAliases maps the lower-cased names the rule's select list gives
// its expressions (AS d) to those expressions, for the names that are no
// column of either source: DuckDB lets a WHERE condition name them
// ("WHERE d <= 0.5"), reading a source's column of the same name first.
// Explaining evaluates each condition away from the select list, so it
// needs the expression itself (inlineAliases).
func (s *Session) selectAliases(ctx context.Context, node map[string]any, sources [2]string) (map[string]map[string]any, error) {
	named := map[string]map[string]any{}
	list, _ := node["select_list"].([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		if name, _ := m["alias"].(string); name != "" {
			expr := maps(m)
			expr["alias"] = ""
			named[strings.ToLower(name)] = expr
		}
	}
	if len(named) == 0 {
		return nil, nil
	}
	for _, src := range sources {
		cols, _, err := s.describe(ctx, "SELECT * FROM "+s.qualified(src))
		if err != nil {
			return nil, fmt.Errorf("read the columns of %q: %w", src, err)
		}
		for _, c := range cols {
			delete(named, strings.ToLower(c.Name))
		}
	}
	return named, nil
}

// inlineAliases returns a copy of the parse-tree node v in which every
// unqualified column reference to a name of named is that expression,
// itself inlined (an alias may name an earlier one). seen guards against
// a name that names itself.
func inlineAliases(v any, named map[string]map[string]any, seen map[string]bool) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = inlineAliases(c, named, seen)
		}
		return out
	case map[string]any:
		if x["class"] == "LAMBDA" {
			// A lambda's parameters hide the names they share.
			inner := make(map[string]map[string]any, len(named))
			for k, e := range named {
				inner[k] = e
			}
			for _, p := range refNames(x["lhs"]) {
				delete(inner, p)
			}
			out := maps(x)
			out["expr"] = inlineAliases(x["expr"], inner, seen)
			return out
		}
		if x["class"] == "COLUMN_REF" {
			if names, _ := x["column_names"].([]any); len(names) == 1 {
				name, _ := names[0].(string)
				key := strings.ToLower(name)
				if expr, ok := named[key]; ok && !seen[key] {
					seen[key] = true
					defer delete(seen, key)
					return inlineAliases(expr, named, seen)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, c := range x {
			out[k] = inlineAliases(c, named, seen)
		}
		return out
	}
	return v
}

// refNames lists the lower-cased unqualified column names v refers to.
func refNames(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			out = append(out, refNames(c)...)
		}
	case map[string]any:
		if names, _ := x["column_names"].([]any); x["class"] == "COLUMN_REF" && len(names) == 1 {
			name, _ := names[0].(string)
			return []string{strings.ToLower(name)}
		}
		for _, c := range x {
			out = append(out, refNames(c)...)
		}
	}
	return out
}
