package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// Paging of the runs list: listPage runs a page; a state filter reads at
// most listScan API pages to fill one.
const (
	listPage = 50
	listScan = 10
)

// states are the filters of the runs list, in lifecycle order.
var states = []kalla.JobState{kalla.JobQueued, kalla.JobRunning, kalla.JobCompleted, kalla.JobFailed, kalla.JobCancelled}

// liveRun is a run's changing fields: the cells of its row on the runs
// list and its run page, which console.js refreshes by their data-f names.
type liveRun struct {
	State    kalla.JobState    `json:"state"`
	Progress float64           `json:"progress"`
	Final    bool              `json:"final"`
	Cells    map[string]string `json:"cells"`
}

// liveOf computes a run's live fields; the pages render the same cells, so
// a refresh shows exactly what a reload would.
func liveOf(v *jobView, now time.Time) liveRun {
	cells := map[string]string{"state": string(v.State), "stage": string(v.Stage), "progress": strconv.FormatFloat(v.Progress*100, 'f', 0, 64) + "%"}
	if v.CancelRequested && !v.State.Final() {
		cells["state"] += " (cancel requested)"
	}
	if v.MatchedSoFar != nil {
		cells["matched"] = strconv.FormatInt(*v.MatchedSoFar, 10)
	}
	if v.RowsRead > 0 {
		cells["rows_read"] = strconv.FormatInt(v.RowsRead, 10)
	}
	if r := v.result(); r != nil {
		for k, n := range map[string]int64{
			"left": r.LeftCount, "right": r.RightCount, "matched": r.MatchedCount,
			"unmatched_left": r.UnmatchedLeftCount, "unmatched_right": r.UnmatchedRightCount, "elapsed_ms": r.ElapsedMS,
		} {
			cells[k] = strconv.FormatInt(n, 10)
		}
		if r.LeftCount > 0 {
			cells["match_rate"] = strconv.FormatFloat(float64(r.LeftCount-r.UnmatchedLeftCount)*100/float64(r.LeftCount), 'f', 1, 64) + "%"
		}
	}
	if v.StartedAt != nil {
		end := now
		if v.FinishedAt != nil {
			end = *v.FinishedAt
		}
		cells["duration"] = end.Sub(*v.StartedAt).Round(100 * time.Millisecond).String()
	}
	if v.Error != nil {
		cells["error"] = v.Error.Error
	}
	return liveRun{State: v.State, Progress: v.Progress, Final: v.State.Final(), Cells: cells}
}

// live is liveOf with the error text masked for display.
func (h *handler) live(v *jobView, now time.Time) liveRun {
	l := liveOf(v, now)
	if e, ok := l.Cells["error"]; ok {
		l.Cells["error"] = h.redact(e)
	}
	return l
}

// runRow is one row of the runs list.
type runRow struct {
	RunID   string
	Created time.Time
	liveRun
}

// runsView is the data of the runs list.
type runsView struct {
	Runs   []runRow
	States []kalla.JobState
	State  kalla.JobState
	// After is this page's cursor; Next the next page's link, if any.
	After string
	Next  string
	// Scanned counts the runs read to fill a filtered page.
	Scanned int
	Error   string
}

// listRuns reads the page of runs the query asks for.
func (h *handler) listRuns(r *http.Request) (*runsView, int, string) {
	q := r.URL.Query()
	view := &runsView{States: states, State: kalla.JobState(q.Get("state")), After: q.Get("after")}
	if view.State != "" && !slices.Contains(states, view.State) {
		return nil, http.StatusBadRequest, "Unknown state " + strconv.Quote(string(view.State)) + "; use one of queued, running, completed, failed, cancelled."
	}
	after := view.After
	now := time.Now()
	for range listScan {
		path := "/api/jobs?limit=" + strconv.Itoa(listPage)
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		var list jobList
		a, err := h.api.get(r.Context(), path, &list)
		if err != nil {
			return nil, http.StatusInternalServerError, err.Error()
		}
		if a.status != http.StatusOK {
			return nil, a.status, a.err().Error
		}
		for i := range list.Jobs {
			v := &list.Jobs[i]
			view.Scanned++
			if view.State == "" || v.State == view.State {
				view.Runs = append(view.Runs, runRow{RunID: v.RunID, Created: v.CreatedAt, liveRun: h.live(v, now)})
			}
		}
		if list.Next == nil {
			return view, http.StatusOK, ""
		}
		after = *list.Next
		if len(view.Runs) >= listPage || view.State == "" {
			break
		}
	}
	next := url.Values{"after": {after}}
	if view.State != "" {
		next.Set("state", string(view.State))
	}
	view.Next = "/ui/?" + next.Encode()
	return view, http.StatusOK, ""
}

func (h *handler) runsPage(w http.ResponseWriter, r *http.Request) {
	view, status, msg := h.listRuns(r)
	if view == nil {
		h.fail(w, r, status, msg)
		return
	}
	h.render(w, r, http.StatusOK, "runs", "Runs", view)
}

// liveList is the answer of /ui/live/runs: the runs of the page the same
// query shows, by run id, and their order.
type liveList struct {
	Runs  map[string]liveRun `json:"runs"`
	Order []string           `json:"order"`
}

func (h *handler) liveRuns(w http.ResponseWriter, r *http.Request) {
	view, status, msg := h.listRuns(r)
	if view == nil {
		h.fail(w, r, status, msg)
		return
	}
	out := liveList{Runs: map[string]liveRun{}, Order: []string{}}
	for _, run := range view.Runs {
		out.Runs[run.RunID] = run.liveRun
		out.Order = append(out.Order, run.RunID)
	}
	writeJSON(w, http.StatusOK, out)
}

func isLive(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/ui/live/") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
