package duckdb_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The waterfall tests load the same invoices and payments into Kalla (CSV
// files) and Postgres, and compute there, with plain SQL, what each rule
// must return: rule k's match_sql runs over CTEs named like the aliases
// that hold the rows NOT EXISTS among the keys earlier rules took. An
// exclusive rule's candidates come from Postgres the same way and go
// through the Go reference (rulesref_test.go).

// The rules' SQL runs unchanged in DuckDB and Postgres.
const (
	exactRefSQL = `SELECT l.invoice_id, r.payment_id, l.amount AS invoice_amount, r.amount AS paid_amount
FROM left_src l JOIN right_src r ON r.ref = l.ref AND r.amount = l.amount`
	nearAmountSQL = `SELECT l.invoice_id, r.payment_id, abs(l.amount - r.amount) AS amount_diff,
  CAST(abs(l.amount - r.amount) * 100 AS INTEGER) AS diff_cents, r.paid_on
FROM left_src l JOIN right_src r ON r.payer = l.customer AND abs(l.amount - r.amount) <= 0.50`
	samePayerSQL = `SELECT l.invoice_id, r.payment_id, r.paid_on, r.paid_on - l.due_on AS day_gap
FROM left_src l JOIN right_src r ON r.payer = l.customer AND r.paid_on - l.due_on BETWEEN -5 AND 45`
)

// ledger is a random set of invoices and payments as CSV text: exact
// payments (some twice), payments a few cents off, payments by the same
// customer for other invoices, and noise.
func ledger(rng *rand.Rand, n int) (invoices, payments string) {
	var inv, pay strings.Builder
	inv.WriteString("invoice_id,customer,ref,amount,due_on\n")
	pay.WriteString("payment_id,payer,ref,amount,paid_on\n")
	ids := rng.Perm(n * 10)
	date := func(d int) string { d = max(0, d); return fmt.Sprintf("2026-%02d-%02d", 1+d/28, 1+d%28) }
	money := func(c int) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
	addPay := func(payer, ref string, cents, day int) {
		fmt.Fprintf(&pay, "%d,%s,%s,%s,%s\n", ids[0]+1, payer, ref, money(cents), date(day))
		ids = ids[1:]
	}
	for i := range n {
		cust := fmt.Sprintf("c%d", rng.IntN(n/10+1))
		cents, due := 100+rng.IntN(20000), rng.IntN(200)
		ref := fmt.Sprintf("R%d", i)
		fmt.Fprintf(&inv, "%d,%s,%s,%s,%s\n", i+1, cust, ref, money(cents), date(due))
		switch p := rng.Float64(); {
		case p < 0.35:
			addPay(cust, ref, cents, due+rng.IntN(40))
			if rng.IntN(4) == 0 {
				addPay(cust, ref, cents, due+rng.IntN(40))
			}
		case p < 0.65:
			addPay(cust, fmt.Sprintf("P%d", i), max(1, cents+rng.IntN(121)-60), due-8+rng.IntN(60))
		case p < 0.8:
			addPay(fmt.Sprintf("c%d", rng.IntN(n/10+1)), "", cents, due+rng.IntN(10))
		}
	}
	for range n / 10 {
		addPay(fmt.Sprintf("c%d", rng.IntN(n/10+1)), "X", 100+rng.IntN(20000), rng.IntN(200))
	}
	return inv.String(), pay.String()
}

// pgLedger loads the CSV text into tables invoices and payments of a fresh
// Postgres schema.
func pgLedger(t *testing.T, invoices, payments string) *kallatest.DB {
	t.Helper()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE invoices (invoice_id bigint, customer text, ref text, amount numeric(12,2), due_on date)`)
	db.Exec(t, `CREATE TABLE payments (payment_id bigint, payer text, ref text, amount numeric(12,2), paid_on date)`)
	db.Exec(t, `CREATE TABLE taken_left (invoice_id bigint)`)
	db.Exec(t, `CREATE TABLE taken_right (payment_id bigint)`)
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for table, data := range map[string]string{"invoices": invoices, "payments": payments} {
		if _, err := conn.Conn().PgConn().CopyFrom(ctx, strings.NewReader(data), "COPY "+table+" FROM STDIN (FORMAT csv, HEADER)"); err != nil {
			t.Fatalf("load %s: %v", table, err)
		}
	}
	return db
}

// pgResult is a query's columns and rows as text (NULL for a null), with
// the values the reference orders by: integers as integers.
type pgResult struct {
	cols []string
	rows [][]val
}

// pgQuery runs q and returns its rows, reading every value as Postgres
// prints it (the simple protocol returns text).
func pgQuery(t *testing.T, db *kallatest.DB, q string) pgResult {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var res pgResult
	fields := rows.FieldDescriptions()
	for _, f := range fields {
		res.cols = append(res.cols, f.Name)
	}
	for rows.Next() {
		var row []val
		for i, raw := range rows.RawValues() {
			switch oid := fields[i].DataTypeOID; {
			case raw == nil:
				row = append(row, nullVal())
			case oid == 20 || oid == 21 || oid == 23: // int8, int2, int4
				n, err := strconv.ParseInt(string(raw), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				row = append(row, ival(n))
			default:
				row = append(row, sval(string(raw)))
			}
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

// pgRule is what Postgres and the reference say rule did.
type pgRule struct {
	cols  []string
	kept  [][]val
	count kalla.RuleCount
}

// pgWaterfall computes the job's rules in Postgres, in order, each over the
// rows the earlier ones left.
func pgWaterfall(t *testing.T, db *kallatest.DB, rules []kalla.Rule) []pgRule {
	t.Helper()
	const remaining = `WITH left_src AS (SELECT * FROM invoices s WHERE NOT EXISTS (SELECT 1 FROM taken_left t WHERE t.invoice_id = s.invoice_id)),
right_src AS (SELECT * FROM payments s WHERE NOT EXISTS (SELECT 1 FROM taken_right t WHERE t.payment_id = s.payment_id))
`
	var out []pgRule
	for _, rule := range rules {
		in := pgQuery(t, db, remaining+"SELECT (SELECT count(*) FROM left_src), (SELECT count(*) FROM right_src)").rows[0]
		cand := pgQuery(t, db, remaining+rule.MatchSQL)
		r := pgRule{cols: cand.cols, kept: cand.rows, count: kalla.RuleCount{
			Name: rule.Name, LeftIn: in[0].i, RightIn: in[1].i, Candidates: int64(len(cand.rows)), Matched: int64(len(cand.rows)),
		}}
		if rule.Exclusive != nil {
			ref := refOf(t, cand.cols, *rule.Exclusive)
			o := ref.run(cand.rows)
			r.kept, r.count.Matched, r.count.Ties = o.accepted, int64(len(o.accepted)), o.ties
		}
		var left, right []string
		for _, p := range r.kept {
			left = append(left, p[slices.Index(cand.cols, "invoice_id")].text())
			right = append(right, p[slices.Index(cand.cols, "payment_id")].text())
		}
		if len(left) > 0 {
			db.Exec(t, "INSERT INTO taken_left SELECT unnest(string_to_array($1, ',')::bigint[])", strings.Join(left, ","))
			db.Exec(t, "INSERT INTO taken_right SELECT unnest(string_to_array($1, ',')::bigint[])", strings.Join(right, ","))
		}
		out = append(out, r)
	}
	return out
}

// refOf is the reference rule for ex over a result with columns cols,
// keyed by invoice_id and payment_id.
func refOf(t *testing.T, cols []string, ex kalla.Exclusive) refRule {
	t.Helper()
	r := refRule{keys: [2][]int{{slices.Index(cols, "invoice_id")}, {slices.Index(cols, "payment_id")}}, leaveTies: ex.Ties == kalla.TiesLeaveUnmatched}
	for _, s := range ex.Sides {
		r.sides[map[string]int{"left_src": 0, "right_src": 1}[s]] = true
	}
	if len(ex.Sides) == 0 {
		r.sides = [2]bool{true, true}
	}
	for _, o := range ex.OrderBy {
		f := strings.Fields(o)
		c := slices.Index(cols, f[0])
		if c < 0 {
			t.Fatalf("order_by %q: no such column in %q", o, cols)
		}
		r.order = append(r.order, refOrder{col: c, desc: len(f) == 2 && strings.EqualFold(f[1], "desc")})
	}
	return r
}

// checkWaterfall runs rules over the ledger in Kalla and compares, rule by
// rule, its matched rows and counts and the two unmatched files with
// Postgres.
func checkWaterfall(t *testing.T, seed uint64, rules []kalla.Rule) (*kalla.Result, []pgRule, *kallatest.DB) {
	invoices, payments := ledger(rand.New(rand.NewPCG(seed, 1)), 600)
	db := pgLedger(t, invoices, payments)
	want := pgWaterfall(t, db, rules)

	b := setup(t, duckdb.Config{})
	job := b.job("", b.write(t, "inv.csv", invoices), b.write(t, "pay.csv", payments), []string{"invoice_id"}, []string{"payment_id"})
	job.Rules = rules
	res := b.run(t, job)

	for k, w := range want {
		got := ducktest.Rows(t, fmt.Sprintf("SELECT %s FROM read_parquet('%s') WHERE %s = '%s'",
			strings.Join(w.cols, ", "), res.OutputPaths.Matched, kalla.RuleColumn, w.count.Name))
		kallatest.SameRows(t, "rule "+w.count.Name, got, sortedText(w.kept))
		gotCount := res.Rules[k]
		gotCount.ElapsedMS = 0
		if gotCount != w.count {
			t.Errorf("rule %s: counts %+v, want %+v", w.count.Name, gotCount, w.count)
		}
		if w.count.Matched == 0 {
			t.Errorf("rule %s matched nothing: the ledger does not exercise it", w.count.Name)
		}
	}
	const unmatched = "SELECT * FROM %s s WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE t.%s = s.%[3]s)"
	kallatest.SameRows(t, "unmatched left", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedLeft)),
		sortedText(pgQuery(t, db, fmt.Sprintf(unmatched, "invoices", "taken_left", "invoice_id")).rows))
	kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet('%s')", res.OutputPaths.UnmatchedRight)),
		sortedText(pgQuery(t, db, fmt.Sprintf(unmatched, "payments", "taken_right", "payment_id")).rows))
	return res, want, db
}

// A waterfall of non-exclusive rules equals the same waterfall in Postgres
// row for row; rows rule 1 matched are invisible to rule 2, which would
// have matched many of them; matched.parquet stacks the rules by column
// name (a rule's rows are NULL in the columns it does not return) and keeps
// the columns' types.
func TestWaterfallEqualsPostgres(t *testing.T) {
	t.Parallel()
	rules := []kalla.Rule{
		{Name: "exact_ref", MatchSQL: exactRefSQL},
		{Name: "near_amount", MatchSQL: nearAmountSQL},
		{Name: "same_payer", MatchSQL: samePayerSQL},
	}
	res, want, db := checkWaterfall(t, 1, rules)

	// Rule 2 alone, over all rows, reaches rows rule 1 took: the
	// waterfall is what hides them.
	alone := pgQuery(t, db, "WITH left_src AS (SELECT * FROM invoices), right_src AS (SELECT * FROM payments) "+nearAmountSQL)
	took := map[string]bool{}
	for _, p := range want[0].kept {
		took[p[0].text()] = true
	}
	hidden := 0
	for _, p := range alone.rows {
		if took[p[0].text()] {
			hidden++
		}
	}
	if hidden == 0 {
		t.Fatal("rule 2 alone matches no row rule 1 took: the test proves nothing about the waterfall")
	}
	m := res.OutputPaths.Matched
	overlap := ducktest.Rows(t, fmt.Sprintf(`SELECT count(*) FROM read_parquet('%[1]s') a JOIN read_parquet('%[1]s') b
ON a.%[2]s <> b.%[2]s AND (a.invoice_id = b.invoice_id OR a.payment_id = b.payment_id)`, m, kalla.RuleColumn))
	kallatest.SameRows(t, "rows matched by two rules", overlap, []string{"0"})

	// Stacked by name, _kalla_rule first, each column once with its type.
	kallatest.SameRows(t, "columns", ducktest.Query(t, fmt.Sprintf("SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM read_parquet('%s'))", m)), []string{
		"_kalla_rule VARCHAR", "invoice_id BIGINT", "payment_id BIGINT", "invoice_amount DECIMAL(18,2)", "paid_amount DECIMAL(18,2)",
		"amount_diff DECIMAL(18,2)", "diff_cents INTEGER", "paid_on DATE", "day_gap BIGINT",
	})
	sourceTypes := ducktest.Rows(t, fmt.Sprintf("SELECT typeof(amount), typeof(due_on) FROM read_parquet('%s') LIMIT 1", res.OutputPaths.UnmatchedLeft))
	kallatest.SameRows(t, "source types", sourceTypes, []string{"DECIMAL(18,2)|DATE"})
	nulls := ducktest.Rows(t, fmt.Sprintf(`SELECT %s, count(invoice_amount), count(paid_amount), count(amount_diff), count(diff_cents), count(paid_on), count(day_gap), count(*)
FROM read_parquet('%s') GROUP BY ALL`, kalla.RuleColumn, m))
	n := func(k int) int64 { return want[k].count.Matched }
	kallatest.SameRows(t, "columns each rule fills", nulls, []string{
		fmt.Sprintf("exact_ref|%d|%d|0|0|0|0|%[1]d", n(0), n(0)),
		fmt.Sprintf("near_amount|0|0|%d|%[1]d|%[1]d|0|%[1]d", n(1)),
		fmt.Sprintf("same_payer|0|0|0|0|%d|%[1]d|%[1]d", n(2)),
	})
}

// Exclusive rules inside a waterfall: each sees only what earlier rules
// left and leaves what it does not keep to the later ones; the kept pairs
// equal the reference's over the candidates Postgres finds.
func TestWaterfallWithExclusiveRulesEqualsReference(t *testing.T) {
	t.Parallel()
	for seed, rules := range [][]kalla.Rule{
		{
			{Name: "exact_ref", MatchSQL: exactRefSQL, Exclusive: &kalla.Exclusive{}},
			{Name: "near_amount", MatchSQL: nearAmountSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"diff_cents", "paid_on DESC"}}},
			{Name: "same_payer", MatchSQL: samePayerSQL, Exclusive: &kalla.Exclusive{Sides: []string{"right_src"}, OrderBy: []string{"day_gap"}}},
		},
		{
			{Name: "near_amount", MatchSQL: nearAmountSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"diff_cents"}, Ties: kalla.TiesLeaveUnmatched}},
			{Name: "exact_ref", MatchSQL: exactRefSQL},
			{Name: "same_payer", MatchSQL: samePayerSQL, Exclusive: &kalla.Exclusive{Sides: []string{"left_src"}, OrderBy: []string{"day_gap DESC"}, Ties: kalla.TiesLeaveUnmatched}},
		},
	} {
		t.Run(rules[0].Name, func(t *testing.T) {
			t.Parallel()
			_, want, _ := checkWaterfall(t, uint64(seed+2), rules)
			if seed == 1 && want[0].count.Ties == 0 {
				t.Error("no ties in the first rule: the ledger does not exercise leave_unmatched")
			}
		})
	}
}
