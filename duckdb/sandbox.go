package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The SQL sandbox decides from DuckDB's own parse tree (json_serialize_sql)
// what a match_sql may touch, before anything is bound or run: text never
// reaches the binder unless every node of its tree is known and allowed.
// It is the first of two layers; the second is the session's locked-down
// database (see lockdown.go), which refuses the same escapes on its own.
//
// The rules, each closing a way out of the job that issue 10 found open:
//   - one SELECT statement (the driver runs every statement of a string);
//   - tables: only the job's source aliases and the names the query defines
//     itself (WITH names; subquery and join aliases name no table); so no
//     catalog or schema qualification (another job's schema, system.main,
//     information_schema.tables), no catalog view (duckdb_tables,
//     sqlite_master), and no file path or glob used as a table (FROM
//     '/etc/passwd' parses as a table named by the path); no WITH name may
//     take a system prefix (duckdb_*, pg_*, sqlite_*, pragma_*);
//   - no table function of any kind (read_text, read_csv, glob, query,
//     range, duckdb_tables(), ...): they are the way to files and catalogs;
//   - functions: DuckDB's built-in scalar and aggregate functions and
//     macros of schema main, listed from duckdb_functions() when the engine
//     opens, minus deniedFunctions, plus tolerance_match and unnest (in an
//     expression); window functions other than aggregates are DuckDB's
//     fixed, pure set (row_number, rank, lag, ...). This allow-list comes
//     from the engine itself: a function added later by an extension, a
//     macro of pg_catalog or a name DuckDB does not know is refused, while
//     the ~800 pure functions (string, date, math, list, JSON text) need no
//     hand-kept list. A deny-list alone would let through whatever a later
//     DuckDB adds;
//   - every other node must be of a type listed below: a node type DuckDB
//     adds in a later version is refused until someone looks at it.
//
// deniedFunctions are the built-ins that read the process's or database's
// state (settings, environment, variables, catalog, connection and query
// ids) or have side effects (sequences, the random seed, sleeping). Their
// names were taken from duckdb_functions() of DuckDB 1.5; getenv exists
// only in the CLI but is listed in case a build includes it.
var deniedFunctions = []string{
	"current_setting", "getenv", "getvariable", "get_block_size",
	"current_database", "current_catalog", "current_schema", "current_schemas", "in_search_path",
	"current_query", "current_query_id", "current_connection_id", "current_transaction_id", "txid_current",
	"current_user", "current_role", "session_user", "user", "version",
	"nextval", "currval", "setseed", "sleep_ms", "pg_sleep",
	"json_execute_serialized_sql", "json_deserialize_sql", "json_serialize_sql", "json_serialize_plan",
}

// systemPrefixes are the name prefixes of DuckDB's catalog views and table
// functions; no WITH name may start with one, so that no name brought into
// scope can stand for a catalog view.
var systemPrefixes = []string{"duckdb_", "pg_", "sqlite_", "pragma_", "information_schema"}

// queryNodes, tableRefs and otherTypes are the "type" values of the nodes
// the sandbox knows; expressionClasses the "class" values of expressions
// (whose "type" is then the operator, checked through the class).
var (
	queryNodes        = set("SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE")
	tableRefs         = set("BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "TABLE_FUNCTION")
	otherTypes        = set("ORDER_MODIFIER", "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER", "DISTINCT_MODIFIER", "ORDER_DEFAULT", "ASCENDING", "DESCENDING")
	expressionClasses = set("BETWEEN", "CASE", "CAST", "COLLATE", "COLUMN_REF", "COMPARISON", "CONJUNCTION",
		"CONSTANT", "FUNCTION", "LAMBDA", "LAMBDA_REF", "OPERATOR", "STAR", "SUBQUERY", "WINDOW", "POSITIONAL_REFERENCE")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// sandbox holds what the check needs from the engine: the functions a
// match_sql may call.
type sandbox struct {
	functions map[string]bool
}

// newSandbox lists the allowed functions from the built-ins of db, a fresh
// database with no extension loaded beyond the statically linked ones.
func newSandbox(ctx context.Context, db *sql.DB) (*sandbox, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT lower(function_name) FROM duckdb_functions()
		WHERE function_type IN ('scalar', 'aggregate', 'macro') AND schema_name = 'main'`)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	defer rows.Close()
	fns := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list functions: %w", err)
		}
		fns[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	for _, n := range deniedFunctions {
		delete(fns, n)
	}
	fns["tolerance_match"] = true
	// unnest is listed as a table function, but in an expression (the only
	// place the walker lets a function be) it expands a list value of the
	// row and reads nothing else.
	fns["unnest"] = true
	return &sandbox{functions: fns}, nil
}

// check parses query with db and walks its tree; aliases are the source
// aliases it may read.
func (sb *sandbox) check(ctx context.Context, db *sql.DB, query string, aliases []string) error {
	var out string
	if err := db.QueryRowContext(ctx, "SELECT json_serialize_sql($1::VARCHAR)::VARCHAR", query).Scan(&out); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	var parsed struct {
		Error      bool              `json:"error"`
		Message    string            `json:"error_message"`
		Position   string            `json:"position"`
		Statements []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if parsed.Error {
		msg := parsed.Message
		if strings.Contains(msg, "Only SELECT statements") {
			return errors.New("must be a single SELECT query")
		}
		if parsed.Position != "" {
			msg += positionOf(query, parsed.Position)
		}
		return errors.New(msg)
	}
	if len(parsed.Statements) != 1 {
		return fmt.Errorf("must be a single SELECT query, got %d statements", len(parsed.Statements))
	}
	var stmt map[string]any
	if err := json.Unmarshal(parsed.Statements[0], &stmt); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	names := map[string]bool{}
	for _, a := range aliases {
		names[strings.ToLower(a)] = true
	}
	w := &walker{sb: sb, aliases: aliases}
	node, ok := stmt["node"].(map[string]any)
	if !ok {
		return errors.New("must be a single SELECT query")
	}
	return w.walk(node, names)
}

// walker checks one parse tree.
type walker struct {
	sb      *sandbox
	aliases []string
}

// reads is the hint every refused table carries.
func (w *walker) reads() string {
	return fmt.Sprintf("match_sql may read only the sources %s and the names it defines (WITH, subquery and join aliases)", strings.Join(w.aliases, " and "))
}

// walk checks v, a part of the tree; names are the tables in scope.
func (w *walker) walk(v any, names map[string]bool) error {
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			if err := w.walk(c, names); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		return w.object(x, names)
	}
	return nil
}

// object checks one JSON object of the tree: a query node, a table
// reference, an expression, or a plain value holder.
func (w *walker) object(x map[string]any, names map[string]bool) error {
	class, _ := x["class"].(string)
	typ, _ := x["type"].(string)
	switch {
	case class != "":
		if !expressionClasses[class] {
			return fmt.Errorf("%s expressions are not allowed in match_sql", strings.ToLower(class))
		}
		// A window function other than an aggregate is one of DuckDB's
		// fixed set (row_number, rank, lag, ...), all pure.
		if class == "FUNCTION" || (class == "WINDOW" && typ == "WINDOW_AGGREGATE") {
			if err := w.function(x); err != nil {
				return err
			}
		}
	case queryNodes[typ]:
		if cte, _ := x["cte_map"].(map[string]any); cte != nil {
			return w.ctes(x, cte, names)
		}
	case typ == "BASE_TABLE":
		return w.table(x, names)
	case typ == "TABLE_FUNCTION":
		fn, _ := x["function"].(map[string]any)
		name, _ := fn["function_name"].(string)
		return fmt.Errorf("table function %s() is not allowed: %s", name, w.reads())
	case typ == "", tableRefs[typ], otherTypes[typ], strings.HasSuffix(typ, "_TYPE_INFO"):
	default:
		return fmt.Errorf("%s is not allowed in match_sql", strings.ToLower(strings.ReplaceAll(typ, "_", " ")))
	}
	return w.children(x, names, "")
}

// children walks the fields of x, except skip.
func (w *walker) children(x map[string]any, names map[string]bool, skip string) error {
	keys := make([]string, 0, len(x))
	for k := range x {
		if k != skip {
			keys = append(keys, k)
		}
	}
	// A fixed order: the first refusal reported is the same every time.
	sort.Strings(keys)
	for _, k := range keys {
		if err := w.walk(x[k], names); err != nil {
			return err
		}
	}
	return nil
}

// ctes checks a query node with a WITH clause: each WITH body sees the
// names before it and itself (a recursive one reads itself), the rest of
// the node sees them all.
func (w *walker) ctes(x, cte map[string]any, names map[string]bool) error {
	entries, _ := cte["map"].([]any)
	scope := copyNames(names)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		name, _ := m["key"].(string)
		if reserved(name) {
			return fmt.Errorf("WITH name %q is a system name; choose another", name)
		}
		scope[strings.ToLower(name)] = true
		if err := w.walk(m["value"], copyNames(scope)); err != nil {
			return err
		}
	}
	return w.children(x, scope, "cte_map")
}

func copyNames(names map[string]bool) map[string]bool {
	out := make(map[string]bool, len(names)+2)
	for k, v := range names {
		out[k] = v
	}
	return out
}

// table checks a table read by name.
func (w *walker) table(x map[string]any, names map[string]bool) error {
	name, _ := x["table_name"].(string)
	schema, _ := x["schema_name"].(string)
	catalog, _ := x["catalog_name"].(string)
	if schema != "" || catalog != "" {
		full := strings.Join(nonEmpty(catalog, schema, name), ".")
		return fmt.Errorf("table %q is qualified: %s", full, w.reads())
	}
	if at := x["at_clause"]; at != nil {
		return fmt.Errorf("table %q: AT clauses are not allowed", name)
	}
	if !names[strings.ToLower(name)] {
		return fmt.Errorf("table %q is not allowed: %s", name, w.reads())
	}
	return w.children(x, names, "")
}

// function checks a function call against the allow-list.
func (w *walker) function(x map[string]any) error {
	name, _ := x["function_name"].(string)
	schema, _ := x["schema"].(string)
	catalog, _ := x["catalog"].(string)
	// The parser itself qualifies some built-ins (trim, list literals) as
	// system.main; the name is then checked like any other.
	if (schema != "" && schema != "main") || (catalog != "" && catalog != "system") {
		return fmt.Errorf("function %q is qualified: call built-in functions by their name alone", strings.Join(nonEmpty(catalog, schema, name), "."))
	}
	if !w.sb.functions[strings.ToLower(name)] {
		return fmt.Errorf("function %s() is not allowed in match_sql: it is not a built-in function, or it reads the server's settings or state", name)
	}
	return nil
}

// reserved reports whether name is, or could stand for, a system view.
func reserved(name string) bool {
	n := strings.ToLower(name)
	for _, p := range systemPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
