package ui_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// duck opens a plain DuckDB database, the test's own reference engine.
func duck(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rewrite replaces the result file path by the rows of query over it
// ({} stands for the file), as a job with rules or reasons writes them
// (issues 13 and 14: _kalla_rule, _kalla_reason, _kalla_near_*).
func rewrite(t testing.TB, db *sql.DB, path, query string) {
	t.Helper()
	tmp := path + ".tmp.parquet"
	q := "COPY (" + replaceFile(query, path) + ") TO '" + tmp + "' (FORMAT parquet)"
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func replaceFile(query, path string) string {
	return strings.ReplaceAll(query, "{}", "read_parquet('"+path+"')")
}

// column lists one column of query's rows, in order, as text.
func column(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// The rows page filters by reason and by rule when the file has those
// columns, shows the nearest candidate's columns apart, and its page and
// CSV download hold exactly the rows the same filter selects in DuckDB.
func TestBrowserRowsFilters(t *testing.T) {
	s := startScheduler(t, nil)
	ctx, downloads := newBrowser(t)
	out := filepath.Join(t.TempDir(), "out")
	runID := s.submit(t, exampleJob(t, out))
	s.waitState(t, runID, kalla.JobCompleted)

	db := duck(t)
	left := filepath.Join(out, kalla.UnmatchedLeftFile)
	rewrite(t, db, left, `SELECT *, CASE WHEN amount >= 100 THEN 'amount_mismatch' ELSE 'no_candidate' END AS _kalla_reason,
		CASE WHEN amount >= 100 THEN 'PAY-' || invoice_id END AS _kalla_near_payment_id,
		CASE WHEN amount >= 100 THEN amount + 0.01 END AS _kalla_near_amount FROM {}`)
	matched := filepath.Join(out, kalla.MatchedFile)
	rewrite(t, db, matched, `SELECT *, CASE WHEN invoice_amount = paid_amount THEN 'exact' ELSE 'tolerance' END AS _kalla_rule FROM {}`)

	want := column(t, db, replaceFile(`SELECT invoice_id FROM {} WHERE _kalla_reason = 'amount_mismatch'`, left))
	if len(want) == 0 || len(want) == len(column(t, db, replaceFile(`SELECT invoice_id FROM {}`, left))) {
		t.Fatalf("the reason filter should keep some rows and drop others: %v", want)
	}
	run(t, ctx, "open the unmatched rows",
		chromedp.Navigate(s.url+"/ui/runs/"+runID+"/rows/unmatched_left"),
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SetValue(chromedp.ID("reason"), "amount_mismatch"),
		chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitReady(chromedp.CSS(`#reason option[value="amount_mismatch"][selected]`)))
	screenshot(t, ctx, "rows-reasons")
	if got := text(t, ctx, "#total"); got != strconv.Itoa(len(want)) {
		t.Errorf("filtered total %s, DuckDB counts %d", got, len(want))
	}
	got := eval[[]string](t, ctx, `[...document.querySelectorAll("#rows tbody tr td:first-child")].map(td => td.textContent)`)
	if !slices.Equal(got, want) {
		t.Errorf("filtered rows %v, DuckDB selects %v", got, want)
	}
	if near := eval[[]string](t, ctx, `[...document.querySelectorAll("#rows thead th.near")].map(th => th.textContent)`); !slices.Equal(near, []string{"nearest candidate", "_kalla_near_payment_id", "_kalla_near_amount"}) {
		t.Errorf("nearest candidate headers %v", near)
	}
	recs := downloadCSV(t, ctx, downloads)
	reason := slices.Index(recs[0], "_kalla_reason")
	if len(recs)-1 != len(want) || reason < 0 {
		t.Fatalf("the filtered CSV has %d rows and header %v; DuckDB selects %d", len(recs)-1, recs[0], len(want))
	}
	for _, r := range recs[1:] {
		if r[reason] != "amount_mismatch" {
			t.Errorf("the filtered CSV holds a row with reason %q", r[reason])
		}
	}

	wantRule := column(t, db, replaceFile(`SELECT invoice_id FROM {} WHERE _kalla_rule = 'tolerance'`, matched))
	if len(wantRule) == 0 {
		t.Fatal("no matched row has the rule tolerance")
	}
	run(t, ctx, "filter the matched rows by rule",
		chromedp.Navigate(s.url+"/ui/runs/"+runID+"/rows/matched"),
		chromedp.WaitVisible(chromedp.ID("rule")),
		chromedp.SetValue(chromedp.ID("rule"), "tolerance"),
		chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitReady(chromedp.CSS(`#rule option[value="tolerance"][selected]`)))
	got = eval[[]string](t, ctx, `[...document.querySelectorAll("#rows tbody tr td:first-child")].map(td => td.textContent)`)
	if !slices.Equal(got, wantRule) {
		t.Errorf("rule-filtered rows %v, DuckDB selects %v", got, wantRule)
	}
}
