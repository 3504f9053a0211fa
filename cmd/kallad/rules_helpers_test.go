package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// rulesData is SQL (DuckDB and Postgres alike) for invoices and payments
// that a waterfall of three rules sharing the key customer_id cuts into
// parts: exact references (one invoice paid twice), near amounts whose
// invoices repeat within a customer (equal scores, so ties), halves of
// invoices only a customer-wide rule takes, payments of customers without
// invoices, and NULL customers on both sides.
var rulesData = []string{
	`CREATE TABLE invoices AS SELECT i AS invoice_id, CASE WHEN i % 97 = 0 THEN NULL ELSE i % 60 END AS customer_id,
		'INV-' || i AS invoice_ref, CAST((i % 13) * 25 + 100 AS NUMERIC(12,2)) AS amount,
		DATE '2026-01-01' + CAST(i % 7 AS INTEGER) * 6 AS due_on FROM generate_series(1, 3000) AS g(i)`,
	`CREATE TABLE payments AS SELECT 100000 + invoice_id AS payment_id, customer_id, invoice_ref, amount,
		due_on + CAST(invoice_id % 4 AS INTEGER) AS paid_on FROM invoices WHERE invoice_id % 5 = 0`,
	`INSERT INTO payments SELECT 150000 + invoice_id, customer_id, invoice_ref, amount, due_on FROM invoices WHERE invoice_id % 50 = 0`,
	`INSERT INTO payments SELECT 200000 + invoice_id, customer_id, 'PAY-' || invoice_id, CAST(amount + (invoice_id % 3 - 1) * 0.25 AS NUMERIC(12,2)),
		due_on + CAST(invoice_id % 9 AS INTEGER) FROM invoices WHERE invoice_id % 5 IN (1, 2)`,
	`INSERT INTO payments SELECT 300000 + invoice_id, customer_id, NULL, CAST(amount / 2 AS NUMERIC(12,2)),
		due_on + CAST(invoice_id % 20 AS INTEGER) FROM invoices WHERE invoice_id % 5 = 3`,
	`INSERT INTO payments SELECT 400000 + invoice_id, customer_id, NULL, CAST(amount / 2 AS NUMERIC(12,2)),
		due_on + CAST(invoice_id % 20 AS INTEGER) FROM invoices WHERE invoice_id % 5 = 3`,
	`INSERT INTO payments SELECT 500000 + invoice_id, 1000 + invoice_id % 7, NULL, amount, due_on FROM invoices WHERE invoice_id % 5 = 4 AND invoice_id % 3 = 0`,
	`INSERT INTO payments SELECT 600000 + invoice_id, NULL, NULL, amount, due_on FROM invoices WHERE invoice_id % 5 = 4 AND invoice_id % 3 = 1`,
}

// sharedKeyRules are the three rules, all joining on customer_id:
// exact references (may use a row twice), the closest amount and date with
// both sides exclusive and ties left unmatched, and each remaining payment
// to its customer's invoice nearest in time (payments exclusive).
var sharedKeyRules = []any{
	map[string]any{"name": "exact_ref", "match_sql": `SELECT l.invoice_id, r.payment_id, l.amount AS invoice_amount, r.amount AS paid_amount
		FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id AND r.invoice_ref = l.invoice_ref AND r.amount = l.amount`},
	map[string]any{"name": "amount_date", "match_sql": `SELECT l.invoice_id, r.payment_id, abs(l.amount - r.amount) AS amount_diff,
		abs(date_diff('day', l.due_on, r.paid_on)) AS day_gap FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id
		AND tolerance_match(l.amount, r.amount, 0.50) AND r.paid_on BETWEEN l.due_on - INTERVAL 5 DAY AND l.due_on + INTERVAL 45 DAY`,
		"exclusive": map[string]any{"sides": []any{"left_src", "right_src"}, "order_by": []any{"amount_diff", "day_gap"}, "ties": "leave_unmatched"}},
	map[string]any{"name": "split_payments", "match_sql": `SELECT l.invoice_id, r.payment_id, abs(date_diff('day', l.due_on, r.paid_on)) AS day_gap
		FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id`,
		"exclusive": map[string]any{"sides": []any{"right_src"}, "order_by": []any{"day_gap"}}},
}

// seedRules creates the rules data in a Postgres schema of its own.
func seedRules(t testing.TB) *kallatest.DB {
	t.Helper()
	db := kallatest.Postgres(t).NewSchema(t)
	for _, q := range rulesData {
		db.Exec(t, q)
	}
	return db
}

// writeRulesFiles runs rulesData in a scratch DuckDB and writes the
// invoices and payments as files of format (parquet, or csv with a
// header) in dir.
func writeRulesFiles(t testing.TB, dir, format string) (invoices, payments string) {
	t.Helper()
	return ducktest.WriteTables(t, rulesData, dir, format)
}

// rulesJob is a job of rules over the invoices (left_src) and payments
// (right_src) at the URIs left and right.
func rulesJob(t testing.TB, rules []any, left, right, callbackURL string) map[string]any {
	job := map[string]any{
		"run_id": kalla.NewRunID(),
		"rules":  rules,
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": left},
			map[string]any{"alias": "right_src", "uri": right},
		},
		"output_path":  t.TempDir(),
		"primary_keys": map[string]any{"left_src": []any{"invoice_id"}, "right_src": []any{"payment_id"}},
	}
	if callbackURL != "" {
		job["callback_url"] = callbackURL
	}
	return job
}

// summaryOf reads the summary.json beside a result's files.
func summaryOf(t *testing.T, res kalla.Result) kalla.Result {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(res.OutputPaths.Matched), kalla.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var s kalla.Result
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// everyRuleMatches checks that each rule of res matched rows, and that the
// rules' matches add up to the matched count.
func everyRuleMatches(t *testing.T, res kalla.Result, names ...string) {
	t.Helper()
	if len(res.Rules) != len(names) {
		t.Fatalf("rules %+v, want %q", res.Rules, names)
	}
	var sum int64
	for i, rc := range res.Rules {
		if rc.Name != names[i] || rc.Matched == 0 {
			t.Errorf("rule %d: %+v, want %s with matches", i, rc, names[i])
		}
		sum += rc.Matched
	}
	if sum != res.MatchedCount {
		t.Errorf("the rules matched %d rows, the result %d", sum, res.MatchedCount)
	}
}
