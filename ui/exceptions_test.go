package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kalla-dev/kalla"
)

// writeCSV writes a CSV file of header and lines into dir.
func writeCSV(t testing.TB, dir, name, header string, lines []string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(header+"\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cents writes an amount of cents as a decimal with two digits.
func cents(c int) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// explainKinds are what the payment of invoice i is, by i % 5: the same
// amount (rule exact), 0.20 more (the suggested rule near), 1.00 more
// (rule wide), 5.00 more (outside every rule's tolerance), or none.
const (
	kindExact = iota
	kindNear
	kindWide
	kindOutside
	kindNone
)

// explainedJob writes n invoices and their payments (plus 20 payments of
// unknown references) as CSV into dir, and returns an explained job of
// three rules over them: exact, near (status suggested, within 0.50) and
// wide (within 2.00), writing into dir/out.
func explainedJob(t testing.TB, dir string, n int) map[string]any {
	t.Helper()
	var inv, pay []string
	for i := range n {
		amount := 10000 + 37*i
		inv = append(inv, fmt.Sprintf("I%04d,R%04d,%s", i, i, cents(amount)))
		if extra := []int{0, 20, 100, 500, -1}[i%5]; extra >= 0 {
			pay = append(pay, fmt.Sprintf("P%04d,R%04d,%s", i, i, cents(amount+extra)))
		}
	}
	for i := range 20 {
		pay = append(pay, fmt.Sprintf("Q%04d,X%04d,1.00", i, i))
	}
	const sql = `SELECT i.id, p.pid, abs(i.amount - p.amount) AS amount_diff FROM left_src i JOIN right_src p
		ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, %s)`
	return map[string]any{
		"run_id":  kalla.NewRunID(),
		"explain": true,
		"rules": []any{
			map[string]any{"name": "exact", "match_sql": fmt.Sprintf(sql, "0")},
			map[string]any{"name": "near", "status": "suggested", "match_sql": fmt.Sprintf(sql, "0.50"),
				"exclusive": map[string]any{"order_by": []any{"amount_diff"}}},
			map[string]any{"name": "wide", "match_sql": fmt.Sprintf(sql, "2.00"),
				"exclusive": map[string]any{"order_by": []any{"amount_diff"}}},
		},
		"sources": []any{
			map[string]any{"alias": "left_src", "uri": writeCSV(t, dir, "invoices.csv", "id,ref,amount", inv)},
			map[string]any{"alias": "right_src", "uri": writeCSV(t, dir, "payments.csv", "pid,ref,amount", pay)},
		},
		"primary_keys": map[string]any{"left_src": []any{"id"}, "right_src": []any{"pid"}},
		"output_path":  filepath.Join(dir, "out"),
	}
}

// kindOf is the kind of invoice id (I0042) or of its payment (P0042).
func kindOf(t testing.TB, id string) int {
	t.Helper()
	i, err := strconv.Atoi(id[1:])
	if err != nil {
		t.Fatalf("id %q", id)
	}
	return i % 5
}

// readSummary reads the summary.json of the result in out.
func readSummary(t testing.TB, out string) kalla.Result {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum kalla.Result
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// inOrder lists one column of a result file's rows that match where (SQL,
// may be empty), in the file's order, as DuckDB reads them.
func inOrder(t testing.TB, path, col, where string) []string {
	t.Helper()
	if where != "" {
		where = "WHERE " + where
	}
	return column(t, duck(t), fmt.Sprintf("SELECT %s::VARCHAR FROM read_parquet('%s', file_row_number = true) %s ORDER BY file_row_number", col, path, where))
}

// pageColumn lists the text of the rows table's cells under the header
// named col, top to bottom.
func pageColumn(t *testing.T, ctx context.Context, col string) []string {
	t.Helper()
	return eval[[]string](t, ctx, `(() => {
		const heads = [...document.querySelectorAll("#rows thead tr:last-child th")].map(th => th.textContent);
		const i = heads.indexOf(`+strconv.Quote(col)+`);
		if (i < 0) return ["no column "+`+strconv.Quote(col)+`];
		return [...document.querySelectorAll("#rows tbody tr")].map(tr => tr.cells[i].textContent);
	})()`)
}

// resultTable reads the run page's table of a result field (reasons,
// ageing, carry_over...) as row name -> column -> cell; a row's name is
// its first cell.
func resultTable(t *testing.T, ctx context.Context, field string) map[string]map[string]string {
	t.Helper()
	cells := eval[[][]string](t, ctx, `[...document.querySelectorAll('table[data-table="`+field+`"] tr')].map(tr => [...tr.cells].map(c => c.textContent))`)
	if len(cells) < 2 {
		t.Fatalf("the run page has no %s table: %v", field, cells)
	}
	out := map[string]map[string]string{}
	for _, row := range cells[1:] {
		out[row[0]] = map[string]string{}
		for j, c := range row[1:] {
			if c != "" {
				out[row[0]][cells[0][j+1]] = c
			}
		}
	}
	return out
}

// counts shows a count per name as the run page's cells do.
func counts(m map[string]int64) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = strconv.FormatInt(v, 10)
	}
	return out
}

// A real explained job with a suggested rule, submitted over the API: the
// run page's reason counts equal summary.json's; the unmatched rows filter
// by reason with the nearest candidate beside each row, the matched rows
// by rule, and the suggested pairs page by 100, each page and the
// filtered CSV holding exactly the rows DuckDB reads from the file with
// the same filter.
func TestBrowserExplainedRun(t *testing.T) {
	s := startScheduler(t, nil)
	ctx, downloads := newBrowser(t)
	const n = 600
	job := explainedJob(t, t.TempDir(), n)
	out := job["output_path"].(string)
	runID := s.submit(t, job)
	s.waitState(t, runID, kalla.JobCompleted)
	sum := readSummary(t, out)
	if sum.Reasons == nil || sum.SuggestedCount != n/5 || sum.MatchedCount != 2*n/5 {
		t.Fatalf("the job did not explain, suggest and match as planned: %+v", sum)
	}

	run(t, ctx, "open the run", chromedp.Navigate(s.url+"/ui/runs/"+runID), chromedp.WaitVisible(chromedp.ID("files")))
	screenshot(t, ctx, "run-explained")
	reasons := resultTable(t, ctx, "reasons")
	for side, want := range map[string]map[string]int64{"left": sum.Reasons.Left, "right": sum.Reasons.Right} {
		if got := reasons[side]; !maps.Equal(got, counts(want)) {
			t.Errorf("the reasons of the %s side read %v, summary.json has %v", side, got, want)
		}
	}
	if got := text(t, ctx, `table[data-table="suggested_count"] td`); got != strconv.FormatInt(sum.SuggestedCount, 10) {
		t.Errorf("suggested_count reads %q, summary.json has %d", got, sum.SuggestedCount)
	}

	// Unmatched rows, filtered by reason through the form.
	left := filepath.Join(out, kalla.UnmatchedLeftFile)
	want := inOrder(t, left, "id", "_kalla_reason = 'outside_rule'")
	if len(want) != n/5 || len(want) == len(inOrder(t, left, "id", "")) {
		t.Fatalf("DuckDB finds %d outside_rule rows in %s, want %d of more", len(want), left, n/5)
	}
	run(t, ctx, "open the unmatched rows",
		chromedp.Click(chromedp.ID("rows-unmatched_left")),
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SetValue(chromedp.ID("reason"), "outside_rule"),
		chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitReady(chromedp.CSS(`#reason option[value="outside_rule"][selected]`)))
	screenshot(t, ctx, "rows-reasons")
	if got := text(t, ctx, "#total"); got != strconv.Itoa(len(want)) {
		t.Errorf("filtered total %s, DuckDB counts %d", got, len(want))
	}
	ids := pageColumn(t, ctx, "id")
	if !slices.Equal(ids, want[:100]) {
		t.Errorf("the first page of outside_rule rows is %v, DuckDB reads %v", ids, want[:100])
	}
	// The nearest candidate, beside its row: the payment of the same
	// number, as the data was written, and what the file holds.
	near := eval[[]string](t, ctx, `[...document.querySelectorAll("#rows thead tr:last-child th.near")].map(th => th.textContent)`)
	if !slices.Contains(near, "_kalla_near_key") || !slices.Contains(near, "_kalla_near_failed") {
		t.Errorf("nearest candidate columns %v", near)
	}
	wantNear := inOrder(t, left, "_kalla_near_key", "_kalla_reason = 'outside_rule'")
	gotNear := pageColumn(t, ctx, "_kalla_near_key")
	if !slices.Equal(gotNear, wantNear[:100]) {
		t.Errorf("nearest candidates %v, DuckDB reads %v", gotNear, wantNear[:100])
	}
	for i, id := range ids {
		if kindOf(t, id) != kindOutside || i < len(gotNear) && gotNear[i] != "P"+id[1:] {
			t.Errorf("row %s (nearest %v) is not an invoice paid 5.00 too much", id, gotNear)
			break
		}
	}
	recs := downloadCSV(t, ctx, downloads)
	reason := slices.Index(recs[0], "_kalla_reason")
	if len(recs)-1 != len(want) || reason < 0 {
		t.Fatalf("the filtered CSV has %d rows and header %v; DuckDB selects %d", len(recs)-1, recs[0], len(want))
	}
	for _, r := range recs[1:] {
		if r[reason] != "outside_rule" {
			t.Errorf("the filtered CSV holds a row with reason %q", r[reason])
		}
	}

	// Matched rows, filtered by rule.
	matched := filepath.Join(out, kalla.MatchedFile)
	wantRule := inOrder(t, matched, "id", "_kalla_rule = 'wide'")
	run(t, ctx, "filter the matched rows by rule",
		chromedp.Navigate(s.url+"/ui/runs/"+runID+"/rows/matched"),
		chromedp.WaitVisible(chromedp.ID("rule")),
		chromedp.SetValue(chromedp.ID("rule"), "wide"),
		chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitReady(chromedp.CSS(`#rule option[value="wide"][selected]`)))
	if got := text(t, ctx, "#total"); got != strconv.Itoa(len(wantRule)) || len(wantRule) != n/5 {
		t.Errorf("rule wide: total %s, DuckDB counts %d, the data has %d", got, len(wantRule), n/5)
	}
	if got := pageColumn(t, ctx, "id"); !slices.Equal(got, wantRule[:100]) {
		t.Errorf("rule-filtered rows %v, DuckDB selects %v", got, wantRule[:100])
	}

	// Suggested pairs, page by page.
	suggested := filepath.Join(out, kalla.SuggestedFile)
	wantSug := inOrder(t, suggested, "id", "")
	run(t, ctx, "open the suggested rows",
		chromedp.Navigate(s.url+"/ui/runs/"+runID),
		chromedp.WaitVisible(chromedp.ID("files")),
		chromedp.Click(chromedp.ID("rows-suggested")),
		chromedp.WaitVisible(chromedp.ID("rows")))
	screenshot(t, ctx, "rows-suggested")
	if got := text(t, ctx, "#total"); got != strconv.FormatInt(sum.SuggestedCount, 10) {
		t.Errorf("suggested total %s, summary.json has %d", got, sum.SuggestedCount)
	}
	page1 := pageColumn(t, ctx, "id")
	run(t, ctx, "next page", chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("prev")))
	page2 := pageColumn(t, ctx, "id")
	if len(page1) != 100 || !slices.Equal(slices.Concat(page1, page2), wantSug) {
		t.Errorf("suggested pages %v + %v, DuckDB reads %v", page1, page2, wantSug)
	}
	for _, id := range wantSug {
		if kindOf(t, id) != kindNear {
			t.Errorf("suggested %s is not an invoice paid 0.20 too much", id)
		}
	}
	if rules := pageColumn(t, ctx, "_kalla_rule"); len(rules) == 0 || slices.ContainsFunc(rules, func(r string) bool { return r != "near" }) {
		t.Errorf("suggested rows' rules %v, want near", rules)
	}
}

// carryDay writes one day of a carry-over chain (bank lines and ledger
// entries, CSV lines without the header) into dir and returns its job,
// which writes into dir/out.
func carryDay(t testing.TB, dir string, bank, ledger []string, carry map[string]any) map[string]any {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"run_id":    kalla.NewRunID(),
		"match_sql": "SELECT l.id AS l_id, r.pid AS r_pid FROM l JOIN r ON r.ref = l.id AND r.amount = l.amount",
		"sources": []any{
			map[string]any{"alias": "l", "uri": writeCSV(t, dir, "bank.csv", "id,amount,value_date", bank)},
			map[string]any{"alias": "r", "uri": writeCSV(t, dir, "ledger.csv", "pid,ref,amount", ledger)},
		},
		"output_path":  filepath.Join(dir, "out"),
		"primary_keys": map[string]any{"l": []any{"id"}, "r": []any{"pid"}},
		"carry_over":   carry,
	}
}

// ageCells shows a side's ageing as the run page's cells do.
func ageCells(a kalla.AgeBuckets) map[string]string {
	out := map[string]string{}
	for k, v := range map[string]int64{"0d": a.Days0, "1-7d": a.Days1to7, "8-30d": a.Days8to30, "31-90d": a.Days31to90, ">90d": a.Over90} {
		out[k] = strconv.FormatInt(v, 10)
	}
	if a.OldestDays != nil {
		out["oldest_days"] = strconv.FormatInt(*a.OldestDays, 10)
	}
	return out
}

// A two-day carry-over chain submitted over the API: day 2's page shows
// summary.json's carry-over counts and ageing, lists the expired rows,
// and links to day 1's run, whose page it opens.
func TestBrowserCarriedOverRun(t *testing.T) {
	s := startScheduler(t, nil)
	ctx, _ := newBrowser(t)
	root := t.TempDir()
	day1 := carryDay(t, filepath.Join(root, "day1"),
		[]string{"A1,10.00,2026-03-01", "A2,20.00,2026-03-01", "A3,30.00,2026-02-20", "A4,40.00,2025-12-01"},
		[]string{"P1,A1,10.00", "P9,ZZ,5.00"},
		map[string]any{"as_of": "2026-03-01"})
	id1 := s.submit(t, day1)
	s.waitState(t, id1, kalla.JobCompleted)
	day2 := carryDay(t, filepath.Join(root, "day2"),
		[]string{"A3,30.00,2026-02-20", "A5,50.00,2026-03-02"},
		[]string{"P2,A2,20.00"},
		map[string]any{"from": day1["output_path"], "as_of": "2026-03-02", "max_age_days": 60, "age_from": "value_date"})
	id2 := s.submit(t, day2)
	s.waitState(t, id2, kalla.JobCompleted)
	out := day2["output_path"].(string)
	sum := readSummary(t, out)
	co, age := sum.CarryOver, sum.Ageing
	if co == nil || age == nil || co.FromRunID != id1 || co.Expired.Left != 1 || co.Cleared.Left != 1 {
		t.Fatalf("day 2 did not carry day 1's open items as planned: carry_over %+v, ageing %+v", co, age)
	}

	run(t, ctx, "open day 2", chromedp.Navigate(s.url+"/ui/runs/"+id2), chromedp.WaitVisible(chromedp.ID("files")))
	screenshot(t, ctx, "run-carried-over")
	wantCarry := map[string]string{"from_run_id": co.FromRunID, "as_of": co.AsOf}
	for name, c := range map[string]kalla.SideCount{"carried": co.Carried, "cleared": co.Cleared, "replaced": co.Replaced, "expired": co.Expired} {
		wantCarry[name+".left"] = strconv.FormatInt(c.Left, 10)
		wantCarry[name+".right"] = strconv.FormatInt(c.Right, 10)
	}
	gotCarry := map[string]string{}
	for name, row := range resultTable(t, ctx, "carry_over") {
		gotCarry[name] = row["value"]
	}
	if !maps.Equal(gotCarry, wantCarry) {
		t.Errorf("the carry_over table reads %v, summary.json has %v", gotCarry, wantCarry)
	}
	ageing := resultTable(t, ctx, "ageing")
	for side, want := range map[string]kalla.AgeBuckets{"left": age.Left, "right": age.Right} {
		if got := ageing[side]; !maps.Equal(got, ageCells(want)) {
			t.Errorf("the %s side's ageing reads %v, summary.json has %v", side, got, ageCells(want))
		}
	}

	// The expired rows are a result file like the others.
	run(t, ctx, "open the expired rows", chromedp.Click(chromedp.ID("rows-expired_left")), chromedp.WaitVisible(chromedp.ID("rows")))
	if got, want := pageColumn(t, ctx, "id"), inOrder(t, filepath.Join(out, kalla.ExpiredLeftFile), "id", ""); !slices.Equal(got, want) || len(want) != 1 {
		t.Errorf("expired rows %v, DuckDB reads %v", got, want)
	}

	run(t, ctx, "follow the link to day 1",
		chromedp.Navigate(s.url+"/ui/runs/"+id2),
		chromedp.WaitVisible(chromedp.ID("carry-over-run")),
		chromedp.Click(chromedp.ID("carry-over-run")),
		chromedp.WaitVisible(chromedp.CSS(`[data-run="`+id1+`"]`)))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(loc, "/ui/runs/"+id1) {
		t.Errorf("the carry-over link led to %s (%v), not day 1's run %s", loc, err, id1)
	}
	if got := text(t, ctx, "#count-unmatched-left"); got != strconv.FormatInt(readSummary(t, day1["output_path"].(string)).UnmatchedLeftCount, 10) {
		t.Errorf("day 1's page shows %s unmatched left", got)
	}
	// Day 1 starts the chain: it carries nothing and links nowhere.
	if eval[bool](t, ctx, `document.getElementById("carried-from") !== null`) {
		t.Error("day 1's page says it carries over open items")
	}
}
