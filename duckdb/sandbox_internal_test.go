package duckdb

import (
	"encoding/json"
	"strings"
	"testing"
)

// A node the sandbox does not know is refused, not walked past: a later
// DuckDB's new table reference or expression cannot slip through.
func TestSandboxFailsClosedOnUnknownNodes(t *testing.T) {
	t.Parallel()
	sb := &sandbox{functions: map[string]bool{"abs": true}}
	for _, tc := range []struct{ tree, says string }{
		{`{"type":"SELECT_NODE","from_table":{"type":"SHOW_REF","alias":""}}`, "show ref"},
		{`{"type":"SELECT_NODE","select_list":[{"class":"NEW_CLASS","type":"X"}]}`, "new_class"},
		{`{"type":"SELECT_NODE","select_list":[{"class":"FUNCTION","function_name":"abs","children":[{"class":"PARAMETER"}]}]}`, "parameter"},
		{`{"type":"FUTURE_NODE"}`, "future node"},
		{`{"type":"SELECT_NODE","from_table":{"type":"BASE_TABLE","table_name":"left_src","at_clause":{"unit":"VERSION"}}}`, "AT clauses"},
	} {
		var node map[string]any
		if err := json.Unmarshal([]byte(tc.tree), &node); err != nil {
			t.Fatal(err)
		}
		w := &walker{sb: sb, aliases: []string{"left_src"}}
		err := w.walk(node, map[string]bool{"left_src": true})
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want a refusal saying %q", tc.tree, err, tc.says)
		}
	}
}
