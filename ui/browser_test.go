package ui_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/kalla-dev/kalla"
)

// A job submitted through the form waits behind a running one, then runs
// once that one is cancelled from its own page; its page follows it from
// queued to completed without a reload and ends with summary.json's
// counts; its unmatched rows page, key search and CSV download agree with
// them.
func TestBrowserSubmitProgressCancel(t *testing.T) {
	s := startScheduler(t, nil)
	ctx, downloads := newBrowser(t)

	// The one job slot (--max-jobs 1) is taken by a job that matches for
	// hours, so the form's job stays queued until that one is cancelled.
	slow := exampleJob(t, t.TempDir())
	slow["match_sql"] = slowMatchSQL
	slowID := s.submit(t, slow)
	s.waitState(t, slowID, kalla.JobRunning)

	out := filepath.Join(t.TempDir(), "out")
	job := exampleJob(t, out)
	srcs := job["sources"].([]any)
	run(t, ctx, "fill the submit form",
		chromedp.Navigate(s.url+"/ui/submit"),
		chromedp.SetValue(chromedp.ID("run_id"), job["run_id"].(string)),
		chromedp.SetValue(chromedp.ID("left_uri"), srcs[0].(map[string]any)["uri"].(string)),
		chromedp.SetValue(chromedp.ID("left_keys"), "invoice_id"),
		chromedp.SetValue(chromedp.ID("right_keys"), "payment_id"),
		chromedp.SetValue(chromedp.ID("match_sql"), job["match_sql"].(string)),
		chromedp.SetValue(chromedp.ID("output_path"), out),
	)
	// Without the right source's URI the API's error comes back next to
	// that input, and the form keeps what was typed.
	run(t, ctx, "submit the form without the right URI",
		chromedp.Click(chromedp.CSS("#submit-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("right_uri-error")))
	if got := text(t, ctx, "#right_uri-error"); !strings.Contains(got, "sources[1].uri") || !strings.Contains(got, "required") {
		t.Errorf("the error next to the right URI reads %q", got)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("left_uri"))); v != srcs[0].(map[string]any)["uri"] {
		t.Errorf("the form lost the left URI: %q", v)
	}
	screenshot(t, ctx, "submit")
	run(t, ctx, "complete the form", chromedp.SetValue(chromedp.ID("right_uri"), srcs[1].(map[string]any)["uri"].(string)))
	run(t, ctx, "submit the form",
		chromedp.Click(chromedp.CSS("#submit-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("state")),
	)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	runID := job["run_id"].(string)
	if !strings.Contains(loc, "/ui/runs/"+runID) {
		t.Fatalf("after submitting, the browser is at %s, not the run's page", loc)
	}
	if got := text(t, ctx, "#state"); got != "queued" {
		t.Fatalf("state %q, want queued behind the slow job", got)
	}
	// The page notes every state and progress it shows; a reload would
	// clear the notes.
	eval[bool](t, ctx, `window.kallaSeen = [];
		window.kallaNote = () => kallaSeen.push(document.getElementById("state").textContent + "|" + document.getElementById("progress").value);
		kallaNote();
		new MutationObserver(kallaNote).observe(document.getElementById("state"), {childList: true, characterData: true, subtree: true});
		true`)

	// A third tab shows the runs list, which follows the runs in place.
	list, closeList := chromedp.NewContext(ctx)
	defer closeList()
	run(t, list, "open the runs list", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-run="`+runID+`"]`)))
	eval[bool](t, list, `window.kallaSameDocument = true`)

	// A second tab cancels the slow job from its page.
	tab, closeTab := chromedp.NewContext(ctx)
	defer closeTab()
	run(t, tab, "open the slow run", chromedp.Navigate(s.url+"/ui/runs/"+slowID), chromedp.WaitVisible(chromedp.ID("cancel")))
	screenshot(t, tab, "run-running")
	run(t, tab, "cancel the slow run", chromedp.Click(chromedp.CSS("#cancel button")), chromedp.WaitVisible(chromedp.ID("notice")))
	waitText(t, tab, "#state", "cancelled")

	// The first tab follows its run to the end without a reload.
	waitText(t, ctx, "#state", "completed")
	seen := eval[[]string](t, ctx, `window.kallaSeen`)
	if len(seen) < 2 {
		t.Fatalf("the run page reloaded or never updated (it noted %v); it should update in place", seen)
	}
	if seen[0] != "queued|0" || seen[len(seen)-1] != "completed|1" {
		t.Errorf("the page showed %v: want queued at 0 first, completed at 1 last", seen)
	}

	waitText(t, list, `tr[data-run="`+runID+`"] [data-f="state"]`, "completed")
	waitText(t, list, `tr[data-run="`+slowID+`"] [data-f="state"]`, "cancelled")
	if !eval[bool](t, list, `window.kallaSameDocument === true`) {
		t.Error("the runs list reloaded; it should update in place")
	}

	var sum kalla.Result
	raw, err := os.ReadFile(filepath.Join(out, kalla.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]int64{
		"#count-left": sum.LeftCount, "#count-right": sum.RightCount, "#count-matched": sum.MatchedCount,
		"#count-unmatched-left": sum.UnmatchedLeftCount, "#count-unmatched-right": sum.UnmatchedRightCount,
	} {
		if got := text(t, ctx, sel); got != strconv.FormatInt(want, 10) {
			t.Errorf("%s shows %q, summary.json has %d", sel, got, want)
		}
	}

	// Its files appear once the page is shown again.
	run(t, ctx, "show the result", chromedp.Click(chromedp.CSS("#live-ended a")), chromedp.WaitVisible(chromedp.ID("files")))
	screenshot(t, ctx, "run")
	if !eval[bool](t, ctx, `document.querySelector("[data-live]") === null`) {
		t.Error("the page of a finished run still polls")
	}
	run(t, ctx, "open the unmatched left rows", chromedp.Click(chromedp.ID("rows-unmatched_left")), chromedp.WaitVisible(chromedp.ID("rows")))
	screenshot(t, ctx, "rows")
	if got := text(t, ctx, "#total"); got != strconv.FormatInt(sum.UnmatchedLeftCount, 10) {
		t.Errorf("rows page total %q, summary.json has %d unmatched left", got, sum.UnmatchedLeftCount)
	}
	if n := rowCount(t, ctx); int64(n) != sum.UnmatchedLeftCount {
		t.Errorf("rows page shows %d rows, summary.json has %d unmatched left", n, sum.UnmatchedLeftCount)
	}

	// Key search: the first row's key finds that row alone.
	key := text(t, ctx, "#rows tbody tr:first-child td:first-child")
	run(t, ctx, "search a key", chromedp.SetValue(chromedp.ID("q"), key), chromedp.Click(chromedp.CSS("#filter button")),
		chromedp.WaitReady(chromedp.CSS(`#q[value="`+key+`"]`)))
	if n := rowCount(t, ctx); n != 1 || text(t, ctx, "#total") != "1" {
		t.Errorf("search for key %q shows %d rows, want 1", key, n)
	}

	// The CSV download of the whole file has every unmatched row.
	run(t, ctx, "clear the search", chromedp.Navigate(s.url+"/ui/runs/"+runID+"/rows/unmatched_left"), chromedp.WaitVisible(chromedp.ID("rows")))
	recs := downloadCSV(t, ctx, downloads)
	if int64(len(recs)-1) != sum.UnmatchedLeftCount {
		t.Errorf("the CSV has %d rows, summary.json %d unmatched left", len(recs)-1, sum.UnmatchedLeftCount)
	}

	// The runs list, filtered by state in its URL.
	run(t, ctx, "open the runs list", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("runs")))
	screenshot(t, ctx, "runs")
	run(t, ctx, "filter cancelled runs", chromedp.Click(chromedp.CSS(`a[href="/ui/?state=cancelled"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.here[href="/ui/?state=cancelled"]`)))
	ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#runs tbody tr")].map(r => r.dataset.run)`)
	if !slices.Equal(ids, []string{slowID}) {
		t.Errorf("cancelled runs listed: %v, want only %s", ids, slowID)
	}
}

// rowCount counts the rows of the rows table on the page.
func rowCount(t *testing.T, ctx context.Context) int {
	t.Helper()
	return eval[int](t, ctx, `document.querySelectorAll("#rows tbody tr").length`)
}

// downloadCSV clicks the page's CSV link, waits for the browser to report
// the download complete, and reads the file it saved (named by the
// download's GUID in dir); the name the server suggested must end in .csv.
func downloadCSV(t *testing.T, ctx context.Context, dir string) [][]string {
	t.Helper()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	begun := make(chan *browser.EventDownloadWillBegin, 1)
	ended := make(chan *browser.EventDownloadProgress, 1)
	if err := chromedp.ListenBrowser(lctx, func(ev any) {
		switch e := ev.(type) {
		case *browser.EventDownloadWillBegin:
			select {
			case begun <- e:
			default:
			}
		case *browser.EventDownloadProgress:
			if e.State == browser.DownloadProgressStateCompleted || e.State == browser.DownloadProgressStateCanceled {
				select {
				case ended <- e:
				default:
				}
			}
		}
	}); err != nil {
		t.Fatalf("listen for the download: %v", err)
	}
	run(t, ctx, "download the CSV", chromedp.Click(chromedp.ID("download-csv")))
	var start *browser.EventDownloadWillBegin
	select {
	case start = <-begun:
	case <-ctx.Done():
		t.Fatal("the CSV download never began")
	}
	if !strings.HasSuffix(start.SuggestedFilename, ".csv") {
		t.Errorf("the download is named %q, not a .csv", start.SuggestedFilename)
	}
	select {
	case e := <-ended:
		if e.GUID != start.GUID || e.State != browser.DownloadProgressStateCompleted {
			t.Fatalf("the CSV download ended %s (%s), not completed", e.State, e.GUID)
		}
	case <-ctx.Done():
		t.Fatal("the CSV download never completed")
	}
	f, err := os.Open(filepath.Join(dir, start.GUID))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the downloaded CSV: %v", err)
	}
	if len(recs) == 0 {
		t.Fatal("the downloaded CSV is empty, without even a header")
	}
	return recs
}
