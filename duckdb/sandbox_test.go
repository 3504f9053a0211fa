package duckdb_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
)

// hostileSQL are the ways out of a job issue 10 lists, each with the name
// the refusal must carry.
var hostileSQL = []struct{ sql, names string }{
	{"SELECT * FROM read_text('/etc/passwd')", "read_text"},
	{"SELECT * FROM read_csv('/etc/passwd')", "read_csv"},
	{"SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"},
	{"SELECT * FROM read_blob('/var/lib/kalla/jetstream/*')", "read_blob"},
	{"SELECT * FROM read_parquet('/srv/other-client/matched.parquet')", "read_parquet"},
	{"SELECT * FROM read_json('/etc/passwd')", "read_json"},
	{"SELECT * FROM glob('/*')", "glob"},
	{"SELECT * FROM query('SELECT 1')", "query"},
	{"SELECT * FROM query_table('left_src')", "query_table"},
	{"SELECT * FROM range(3)", "range"},
	{"SELECT * FROM unnest([1, 2])", "unnest"},
	{"SELECT * FROM duckdb_tables()", "duckdb_tables"},
	{"SELECT * FROM duckdb_settings()", "duckdb_settings"},
	{"SELECT * FROM '/etc/passwd'", "/etc/passwd"},
	{"SELECT * FROM 'x.csv'", "x.csv"},
	{"SELECT * FROM '/data/*.parquet'", "/data/*.parquet"},
	{"SELECT * FROM kalla_job_1.left_src", "kalla_job_1.left_src"},
	{"SELECT * FROM main.left_src", "main.left_src"},
	{"SELECT * FROM system.main.duckdb_tables", "system.main.duckdb_tables"},
	{"SELECT * FROM information_schema.tables", "information_schema.tables"},
	{"SELECT * FROM pg_catalog.pg_class", "pg_catalog.pg_class"},
	{"SELECT * FROM duckdb_tables", "duckdb_tables"},
	{"SELECT * FROM sqlite_master", "sqlite_master"},
	{"SELECT * FROM pragma_table_info('left_src')", "pragma_table_info"},
	{"SELECT * FROM left_src; SELECT * FROM right_src", "2 statements"},
	{"SELECT * FROM left_src; COPY left_src TO '/tmp/x.csv'", "single SELECT"},
	{"SELECT 1; INSTALL httpfs", "single SELECT"},
	{"COPY (SELECT 1) TO '/tmp/x.csv'", "single SELECT"},
	{"ATTACH '/tmp/x.db'", "single SELECT"},
	{"SELECT getenv('HOME')", "getenv"},
	{"SELECT current_setting('temp_directory')", "current_setting"},
	{"SELECT nextval('s')", "nextval"},
	{"SELECT current_database()", "current_database"},
	{"SELECT getvariable('x')", "getvariable"},
	{"SELECT kalla_job_1.tolerance_match(1, 1, 1)", "kalla_job_1.tolerance_match"},
	{"SELECT pg_catalog.pg_sleep(1)", "pg_catalog.pg_sleep"},
	{"SELECT main.sleep_ms(1)", "sleep_ms"},
	{"SELECT $1", "parameter"},
	// Escapes nested where a shallow check would not look.
	{"SELECT (SELECT content FROM read_text('/etc/passwd')) AS c FROM left_src", "read_text"},
	{"SELECT * FROM left_src WHERE invoice_id IN (SELECT 1 FROM glob('/*'))", "glob"},
	{"WITH x AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM x", "read_text"},
	{"SELECT * FROM left_src l JOIN read_csv('/etc/passwd') r ON true", "read_csv"},
	{"SELECT * FROM left_src l, LATERAL (SELECT * FROM information_schema.columns) c", "information_schema.columns"},
	{"SELECT * FROM left_src UNION ALL SELECT * FROM read_parquet('/x.parquet')", "read_parquet"},
	{"SELECT list_transform([1], x -> (SELECT count(*) FROM duckdb_settings())) FROM left_src", "duckdb_settings"},
	{"WITH duckdb_settings AS (SELECT 1) SELECT * FROM duckdb_settings", "duckdb_settings"},
	{"WITH a AS (SELECT * FROM b), b AS (SELECT * FROM left_src) SELECT * FROM a", `"b"`},
	{"SELECT * FROM (SELECT * FROM other_table) t", "other_table"},
}

// Every escape is refused at validation, on match_sql, naming the table
// or function, and nothing is written.
func TestSandboxRefusesEscapes(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n")
	for i, tc := range hostileSQL {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			job := b.job(tc.sql, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
			job.OutputPath = filepath.Join(b.dir, "out-"+strconv.Itoa(i))
			_, err := b.runner.Run(context.Background(), job, nil)
			var v *kalla.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("%s: want a validation error, got %v", tc.sql, err)
			}
			if v.Field != "match_sql" || !strings.Contains(v.Message, tc.names) {
				t.Errorf("%s: got field %q message %q; want match_sql naming %s", tc.sql, v.Field, v.Message, tc.names)
			}
			if strings.Contains(v.Message, "root:") {
				t.Errorf("%s: the refusal leaks file contents: %s", tc.sql, v.Message)
			}
			if _, err := os.Stat(job.OutputPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: output folder was created for a refused job", tc.sql)
			}
		})
	}
}

// ordinarySQL is SQL the sandbox must keep accepting.
var ordinarySQL = []string{
	toleranceSQL,
	`WITH c AS (SELECT invoice_id, amount FROM left_src WHERE amount > 0)
	 SELECT c.invoice_id, p.payment_id FROM c JOIN right_src p ON p.invoice_ref = c.invoice_id`,
	`SELECT invoice_id, payment_id FROM (
	   SELECT i.invoice_id, p.payment_id, row_number() OVER (PARTITION BY i.invoice_id ORDER BY abs(i.amount - p.amount), p.payment_id) AS pick
	   FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id) t WHERE pick = 1`,
	`SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
	 QUALIFY rank() OVER (PARTITION BY i.invoice_id ORDER BY p.payment_id DESC) = 1`,
	`SELECT i.invoice_id, p.payment_id, upper(trim(lower('x'))) || concat('a', 'b') AS s, date_trunc('month', DATE '2024-01-15') AS d,
	        round(i.amount * 1.5, 2) AS r, floor(p.amount) AS f, coalesce(NULL, 1) AS c, CAST(i.amount AS DECIMAL(18,4)) AS cast_amount,
	        CASE WHEN i.amount BETWEEN 0 AND 10 THEN 'small' ELSE 'big' END AS size, regexp_matches('abc', 'b') AS re,
	        strftime(TIMESTAMP '2024-01-01 10:00:00', '%Y') AS y, i.amount::VARCHAR AS txt, [1, 2][1] AS l, {'a': 1}.a AS st,
	        list_transform([1, 2], x -> x + 1) AS lt, levenshtein('a', 'b') AS lev, NOT (i.amount IS NULL) AS nn
	 FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`,
	`SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
	 WHERE EXISTS (SELECT 1 FROM right_src p2 WHERE p2.invoice_ref = i.invoice_id AND p2.payment_id <> p.payment_id)
	   AND i.amount = (SELECT max(amount) FROM left_src i2 WHERE i2.invoice_id = i.invoice_id)`,
	`SELECT i.invoice_id, p.payment_id FROM left_src i, right_src p WHERE p.invoice_ref = i.invoice_id
	 UNION ALL SELECT i.invoice_id, NULL FROM left_src i ORDER BY 1 LIMIT 10`,
	`WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 3)
	 SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id JOIN n ON n.k = 1`,
	`SELECT DISTINCT i.invoice_id, p.payment_id, v.tag FROM left_src i JOIN right_src p USING (amount)
	 CROSS JOIN (VALUES ('a')) v(tag) LEFT JOIN LATERAL (SELECT p.amount AS a2) x ON true`,
	`SELECT i.invoice_id, any_value(p.payment_id) AS payment_id, sum(p.amount) AS total, count(*) FILTER (WHERE p.amount > 0) AS n,
	        string_agg(p.payment_id::VARCHAR, ',') AS ids FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id
	 GROUP BY i.invoice_id HAVING sum(p.amount) > 0`,
	`SELECT i.* EXCLUDE (amount), p.payment_id FROM left_src AS i JOIN right_src AS p ON p.invoice_ref = i.invoice_id USING SAMPLE 100%`,
	`SELECT COLUMNS('invoice_.*'), lag(amount) OVER w AS prev FROM left_src WINDOW w AS (ORDER BY invoice_id)`,
	`SELECT i.invoice_id, unnest(generate_series(1, 3)) AS k FROM left_src i`,
	`SELECT i.invoice_id, p.payment_id FROM left_src i ASOF JOIN right_src p ON p.invoice_ref = i.invoice_id AND p.paid_on >= i.issued_on
	 WHERE i.customer LIKE 'A%' AND p.payer ILIKE '%x%' AND i.issued_on + INTERVAL 30 DAY > now() AND extract(year FROM i.issued_on) > 2000
	   AND i.amount IS DISTINCT FROM p.amount AND p.payer SIMILAR TO 'a.*' AND i.customer NOT IN ('x', 'y') AND count_if(true) OVER () > 0`,
}

// Ordinary match SQL passes, including the four benchmark patterns.
func TestSandboxAcceptsOrdinarySQL(t *testing.T) {
	t.Parallel()
	eng, err := duckdb.Open(duckdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	queries := append(benchmarkPatterns(t), ordinarySQL...)
	for _, q := range queries {
		if err := eng.CheckSQL(context.Background(), q, []string{"left_src", "right_src"}); err != nil {
			t.Errorf("refused ordinary SQL: %v\n%s", err, q)
		}
	}
	// Aliases are whatever the job names its sources.
	if err := eng.CheckSQL(context.Background(), "SELECT * FROM Bank b JOIN ledger l ON b.id = l.id", []string{"bank", "LEDGER"}); err != nil {
		t.Errorf("refused other aliases: %v", err)
	}
}

// benchmarkPatterns reads the match_sql of benchmarks/schedbench's patterns
// from their source, so the test follows them as they change.
func benchmarkPatterns(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "benchmarks", "schedbench", "patterns.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "sql" {
			if lit, ok := kv.Value.(*ast.BasicLit); ok {
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
		}
		return true
	})
	if len(out) != 4 {
		t.Fatalf("found %d benchmark patterns, want 4", len(out))
	}
	return out
}
