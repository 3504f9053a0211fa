package duckdb_test

import (
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

const toleranceSQL = `SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount
FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)`

// The boundary pairs differ by exactly the tolerance, which binary floats
// get wrong (100.11 - 100.10 > 0.01 as DOUBLE), or by one cent more.
func TestToleranceBoundaryIsInclusiveAndExact(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "inv.csv", "invoice_id,amount\n1,100.10\n2,100.10\n3,0.30\n4,5.00\n5,19.99\n")
	right := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n10,1,100.11\n20,2,100.12\n30,3,0.29\n40,4,4.98\n50,5,20.00\n")
	res := b.run(t, b.job(toleranceSQL, left, right, []string{"invoice_id"}, []string{"payment_id"}))
	if res.MatchedCount != 3 || res.UnmatchedLeftCount != 2 || res.UnmatchedRightCount != 2 {
		t.Fatalf("counts: %+v", res)
	}
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "invoice_id, payment_id, invoice_amount, paid_amount, typeof(invoice_amount)"),
		[]string{"1|10|100.10|100.11|DECIMAL(18,2)", "3|30|0.30|0.29|DECIMAL(18,2)", "5|50|19.99|20.00|DECIMAL(18,2)"})
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "*"), []string{"2|100.10", "4|5.00"})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "*"), []string{"20|2|100.12", "40|4|4.98"})
}

func TestDuplicateMatchesNullKeysAndOrphans(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	// Invoice 1 is paid twice; invoice 2 and payment 30 have NULL refs and
	// must never match each other; 3 and 40 are orphans.
	left := b.write(t, "inv.csv", "invoice_id,ref,amount\n1,A,10.00\n2,,7.00\n3,C,1.00\n")
	right := b.write(t, "pay.csv", "payment_id,ref,amount\n10,A,10.00\n20,A,10.00\n30,,7.00\n40,Z,1.00\n")
	sql := `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON i.ref = p.ref AND i.amount = p.amount`
	res := b.run(t, b.job(sql, left, right, []string{"invoice_id"}, []string{"payment_id"}))
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{"1|10", "1|20"})
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "invoice_id"), []string{"2", "3"})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "payment_id"), []string{"30", "40"})
	if res.LeftCount != 3 || res.RightCount != 4 || res.MatchedCount != 2 {
		t.Errorf("counts: %+v", res)
	}
}

// A match_sql may produce NULL keys (an outer join keeps invoices without
// a payment): a NULL among the matched keys must not hide any source row
// from the unmatched sets, as it would under NOT IN, and a source row whose
// own key is NULL is never matched.
func TestNullKeysInMatchedRows(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "inv.csv", "invoice_id,amount\n1,10.00\n2,7.00\n,3.00\n")
	right := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n10,1,10.00\n20,9,7.00\n,2,1.00\n")
	sql := `SELECT i.invoice_id, p.payment_id FROM left_src i LEFT JOIN right_src p ON p.invoice_ref = i.invoice_id AND p.amount = i.amount`
	res := b.run(t, b.job(sql, left, right, []string{"invoice_id"}, []string{"payment_id"}))
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{"1|10", "2|NULL", "NULL|NULL"})
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "invoice_id, amount"), []string{"NULL|3.00"})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "payment_id, invoice_ref"), []string{"20|9", "NULL|2"})
}

func TestCompositeKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	// The same invoice number exists in two companies; only the pair
	// (company, number) identifies a row.
	left := b.write(t, "inv.csv", "company,number,amount\nA,1,5.00\nB,1,6.00\nB,2,7.00\n")
	right := b.write(t, "pay.csv", "company,number,amount\nA,1,5.00\nB,2,7.50\n")
	sql := `SELECT l.company AS left_src_company, l.number AS left_src_number, r.company AS right_src_company, r.number AS right_src_number
FROM left_src l JOIN right_src r ON l.company = r.company AND l.number = r.number AND l.amount = r.amount`
	res := b.run(t, b.job(sql, left, right, []string{"company", "number"}, []string{"company", "number"}))
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "company, number"), []string{"B|1", "B|2"})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "company, number"), []string{"B|2"})
	if res.MatchedCount != 1 {
		t.Errorf("matched %d, want 1", res.MatchedCount)
	}
}

// CSV values arrive unchanged: spaces, quotes, newlines, unicode, and
// digits with leading zeros stay text; amounts become exact DECIMALs.
func TestCSVValuesArriveUnchanged(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "inv.csv", "id,name,code,amount,big,when\n"+
		"1,\"  padded  \",007,12.345,123456789012345678901.5,2026-01-31\n"+
		"2,\"quote \"\" and\nnewline\",010,-0.5,1,2026-02-28\n"+
		"3,Zürich ✓,1,3,2,2026-03-01\n")
	right := b.write(t, "pay.csv", "pid,id\n9,1\n")
	res := b.run(t, b.job("SELECT l.id, r.pid FROM left_src l JOIN right_src r ON l.id = r.id", left, right, []string{"id"}, []string{"pid"}))
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft,
		"id, name, code, typeof(code), amount::VARCHAR, typeof(amount), big::VARCHAR, typeof(big), typeof(\"when\")"),
		[]string{
			"2|quote \" and\nnewline|010|VARCHAR|-0.500|DECIMAL(18,3)|1.0|DECIMAL(38,1)|DATE",
			"3|Zürich ✓|1|VARCHAR|3.000|DECIMAL(18,3)|2.0|DECIMAL(38,1)|DATE",
		})
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{"1|9"})
	spaces := ducktest.Query(t, "SELECT name FROM read_parquet('"+filepath.Join(b.dir, "out", kalla.MatchedFile)+"') m, read_csv('"+left+"') c WHERE c.id = m.id")
	kallatest.SameRows(t, "padded name", spaces, []string{"  padded  "})
}

func TestParquetSourcesAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := filepath.Join(b.dir, "inv.parquet")
	pay := filepath.Join(b.dir, "pay.parquet")
	ducktest.Query(t, "COPY (SELECT i AS invoice_id, (i * 1.25)::DECIMAL(12,2) AS amount, DATE '2026-01-01' + i::INT AS due, 'c' || (i % 3) AS cur FROM range(1, 101) t(i)) TO '"+inv+"'")
	ducktest.Query(t, "COPY (SELECT 1000 + i AS payment_id, i AS invoice_ref, (i * 1.25)::DECIMAL(12,2) AS amount FROM range(1, 101) t(i)) TO '"+pay+"'")
	sql := `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0)`
	cases := []struct {
		filter       string
		leftOp       kalla.Filter
		wantLeftRows int64
	}{
		{"eq", kalla.Filter{Column: "cur", Op: kalla.OpEq, Value: []byte(`"c1"`)}, 34},
		{"neq", kalla.Filter{Column: "cur", Op: kalla.OpNeq, Value: []byte(`"c1"`)}, 66},
		{"gt", kalla.Filter{Column: "amount", Op: kalla.OpGt, Value: []byte(`100`)}, 20},
		{"gte", kalla.Filter{Column: "amount", Op: kalla.OpGte, Value: []byte(`100`)}, 21},
		{"lt", kalla.Filter{Column: "due", Op: kalla.OpLt, Value: []byte(`"2026-01-11"`)}, 9},
		{"lte", kalla.Filter{Column: "due", Op: kalla.OpLte, Value: []byte(`"2026-01-11"`)}, 10},
		{"between", kalla.Filter{Column: "invoice_id", Op: kalla.OpBetween, Value: []byte(`[10, 19]`)}, 10},
		{"in", kalla.Filter{Column: "invoice_id", Op: kalla.OpIn, Value: []byte(`[1, 2, 3, 500]`)}, 3},
		{"like", kalla.Filter{Column: "cur", Op: kalla.OpLike, Value: []byte(`"%2"`)}, 33},
		{"injection", kalla.Filter{Column: "cur", Op: kalla.OpEq, Value: []byte(`"c1' OR '1'='1"`)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			job := b.job(sql, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
			job.OutputPath = filepath.Join(b.dir, "out-"+tc.filter)
			job.Sources[0].Filters = []kalla.Filter{tc.leftOp}
			res := b.run(t, job)
			if res.LeftCount != tc.wantLeftRows || res.MatchedCount != tc.wantLeftRows || res.UnmatchedRightCount != 100-tc.wantLeftRows {
				t.Errorf("got left %d matched %d unmatched right %d, want %d/%d/%d", res.LeftCount, res.MatchedCount, res.UnmatchedRightCount,
					tc.wantLeftRows, tc.wantLeftRows, 100-tc.wantLeftRows)
			}
		})
	}
}

// A job whose data far exceed the memory limit spills to the temp dir and
// still gives the same result as an unconstrained run.
func TestSpillsUnderSmallMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("spill test reads 2M rows")
	}
	t.Parallel()
	free := setup(t, duckdb.Config{})
	tight := setup(t, duckdb.Config{MemoryLimit: "128MB", TempDir: t.TempDir(), Threads: 2})
	// CSV sources are staged into tables, which must spill too.
	inv := filepath.Join(free.dir, "inv.csv")
	pay := filepath.Join(free.dir, "pay.csv")
	ducktest.Query(t, "COPY (SELECT i AS invoice_id, md5(i::VARCHAR) AS note, (i % 100000 / 100)::DECIMAL(12,2) AS amount FROM range(2000000) t(i)) TO '"+inv+"'")
	ducktest.Query(t, "COPY (SELECT i AS payment_id, (i * 7) % 2000000 AS invoice_ref, md5((i*3)::VARCHAR) AS memo, ((i * 7) % 2000000 % 100000 / 100 + (i % 3) * 0.01)::DECIMAL(12,2) AS amount FROM range(2000000) t(i)) TO '"+pay+"'")
	var results [2]*kalla.Result
	for k, b := range []*bundle{free, tight} {
		job := b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
		results[k] = b.run(t, job)
	}
	f, g := results[0], results[1]
	if f.MatchedCount != g.MatchedCount || f.UnmatchedLeftCount != g.UnmatchedLeftCount || f.UnmatchedRightCount != g.UnmatchedRightCount {
		t.Fatalf("128MB run differs: %+v vs %+v", g, f)
	}
	if f.MatchedCount == 0 || f.UnmatchedLeftCount == 0 {
		t.Fatalf("degenerate data: %+v", f)
	}
}
