package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kalla-dev/kalla"
)

// resultFiles are the Parquet files a result may hold, in the order the
// run page lists them; suggested.parquet only when the job has suggested
// rules, expired_{left,right}.parquet only for a carry-over job with
// max_age_days (issue 14).
var resultFiles = []string{"matched", "unmatched_left", "unmatched_right", "suggested", "expired_left", "expired_right"}

// runView is the data of the run page.
type runView struct {
	RunID string
	View  *jobView
	Live  liveRun
	// Job is the job as submitted, secrets masked, indented.
	Job      string
	Attempts []kalla.Attempt
	Callback *kalla.CallbackDelivery
	// Tables are the result's parts beyond the counts (per-rule counts,
	// reasons, ageing...), shown as they come.
	Tables []table
	Files  []resultFile
	// FilesNote says why there are no files to open.
	FilesNote string
	// CarryOver is the run whose open items this one carried over, once
	// its result names it; CarryFrom the folder they come from.
	CarryOver, CarryFrom string
	Notice               string
}

// resultFile is a result file on the run page.
type resultFile struct {
	Name string // matched, unmatched_left, ...
	Path string
}

// table is a part of a result shown generically.
type table struct {
	Title   string
	Columns []string
	Rows    [][]string
}

// getRun reads the run named by the path, answering the error itself.
func (h *handler) getRun(w http.ResponseWriter, r *http.Request) (*jobView, bool) {
	var v jobView
	a, err := h.api.get(r.Context(), "/api/jobs/"+url.PathEscape(r.PathValue("run_id")), &v)
	switch {
	case err != nil:
		h.fail(w, r, http.StatusInternalServerError, err.Error())
		return nil, false
	case a.status != http.StatusOK:
		h.fail(w, r, a.status, a.err().Error)
		return nil, false
	}
	return &v, true
}

func (h *handler) runPage(w http.ResponseWriter, r *http.Request) {
	v, ok := h.getRun(w, r)
	if !ok {
		return
	}
	view := runView{RunID: v.RunID, View: v, Live: h.live(v, time.Now()), Attempts: v.Attempts, Callback: v.Callback}
	for i := range view.Attempts {
		view.Attempts[i].Error = h.redact(view.Attempts[i].Error)
	}
	if view.Callback != nil {
		cb := *view.Callback
		cb.LastError = h.redact(cb.LastError)
		view.Callback = &cb
	}
	var buf bytes.Buffer
	if json.Indent(&buf, v.Job, "", "  ") == nil {
		view.Job = h.redact(buf.String())
	}
	view.Tables = resultTables(v.Result)
	view.CarryOver, view.CarryFrom = carryOverRun(v)
	view.CarryFrom = h.redact(view.CarryFrom)
	if v.State == kalla.JobCompleted {
		if dir, location, note := h.resultDir(r.Context(), v); note != "" {
			view.FilesNote = note
		} else {
			view.Files = existingFiles(dir, location)
		}
	}
	switch r.URL.Query().Get("notice") {
	case "cancel":
		view.Notice = "Cancel requested: the run stops shortly."
	case "submitted":
		view.Notice = "Job accepted."
	}
	h.render(w, r, http.StatusOK, "run", "Run "+v.RunID, view)
}

func (h *handler) liveRun(w http.ResponseWriter, r *http.Request) {
	v, ok := h.getRun(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, liveList{Runs: map[string]liveRun{v.RunID: h.live(v, time.Now())}, Order: []string{v.RunID}})
}

// cancel asks the API to cancel the run (DELETE /api/jobs/{run_id}).
func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	runID := r.PathValue("run_id")
	a, err := h.api.call(r.Context(), http.MethodDelete, "/api/jobs/"+url.PathEscape(runID), nil)
	switch {
	case err != nil:
		h.fail(w, r, http.StatusInternalServerError, err.Error())
	case a.status == http.StatusOK || a.status == http.StatusAccepted:
		h.log.Info("cancel requested from the console", "run_id", runID)
		http.Redirect(w, r, "/ui/runs/"+url.PathEscape(runID)+"?notice=cancel", http.StatusSeeOther)
	default:
		h.fail(w, r, a.status, a.err().Error)
	}
}

// existingFiles lists the result files in dir, a copy of location.
func existingFiles(dir, location string) []resultFile {
	var out []resultFile
	for _, name := range resultFiles {
		if _, err := os.Stat(filepath.Join(dir, name+".parquet")); err == nil {
			out = append(out, resultFile{Name: name, Path: location + "/" + name + ".parquet"})
		}
	}
	return out
}

// resultDir returns the local folder of a completed run's result (a copy,
// for a result on S3), the folder's location as the job named it, or why
// its files cannot be opened: removed, or replaced by a later run
// publishing to the same output_path (summary.json names that run).
func (h *handler) resultDir(ctx context.Context, v *jobView) (dir, location, note string) {
	res := v.result()
	if res == nil || res.OutputPaths.Matched == "" {
		return "", "", "The run has no result files."
	}
	location = res.OutputPaths.Matched[:strings.LastIndex(res.OutputPaths.Matched, "/")]
	if strings.HasPrefix(location, "s3://") {
		if h.copies == nil {
			return "", location, "The result is on S3 (" + location + "/); this console reads local results only."
		}
		dir, note = h.copies.local(ctx, v.RunID, location, remoteNames(v.Result))
		return dir, location, h.redact(note)
	}
	return location, location, checkSummary(filepath.Join(location, kalla.SummaryFile), v.RunID)
}

// knownResult are the result fields the run page shows as counts.
var knownResult = map[string]bool{
	"run_id": true, "matched_count": true, "unmatched_left_count": true, "unmatched_right_count": true,
	"left_count": true, "right_count": true, "elapsed_ms": true, "output_paths": true,
}

// resultTables shows the result's other fields: an array of objects as a
// table (per-rule counts), an object as name and value (reasons, ageing),
// anything else as one value. Keys keep the order of the JSON.
func resultTables(raw json.RawMessage) []table {
	keys, vals := orderedObject(raw)
	var out []table
	for i, k := range keys {
		if knownResult[k] {
			continue
		}
		t := table{Title: k}
		v := bytes.TrimSpace(vals[i])
		switch {
		case len(v) > 0 && v[0] == '[':
			var items []json.RawMessage
			_ = json.Unmarshal(v, &items)
			for _, item := range items {
				ik, iv := orderedObject(item)
				if ik == nil {
					t.Columns = []string{"value"}
					t.Rows = append(t.Rows, []string{text(item)})
					continue
				}
				row := make([]string, len(t.Columns))
				for j, c := range ik {
					col := indexOf(t.Columns, c)
					if col < 0 {
						t.Columns = append(t.Columns, c)
						row = append(row, "")
						col = len(t.Columns) - 1
					}
					row[col] = text(iv[j])
				}
				t.Rows = append(t.Rows, row)
			}
		case len(v) > 0 && v[0] == '{':
			t.Columns, t.Rows = objectTable(v)
		default:
			t.Columns = []string{"value"}
			t.Rows = [][]string{{text(v)}}
		}
		for r := range t.Rows {
			for len(t.Rows[r]) < len(t.Columns) {
				t.Rows[r] = append(t.Rows[r], "")
			}
		}
		out = append(out, t)
	}
	return out
}

// objectTable lays out an object: one row per member whose value is an
// object, with a column per field (reasons and ageing: a row per side),
// when every member's value is one; else a row per name, an object value
// spread over rows named "name.field" (carry_over's counts per side).
func objectTable(v json.RawMessage) (columns []string, rows [][]string) {
	ik, iv := orderedObject(v)
	nested := len(ik) > 0
	for _, x := range iv {
		if k, _ := orderedObject(x); k == nil {
			nested = false
		}
	}
	if nested {
		columns = []string{"name"}
		for j, c := range ik {
			row := make([]string, len(columns))
			row[0] = c
			fk, fv := orderedObject(iv[j])
			for n, f := range fk {
				col := indexOf(columns, f)
				if col < 0 {
					columns = append(columns, f)
					row = append(row, "")
					col = len(columns) - 1
				}
				row[col] = text(fv[n])
			}
			rows = append(rows, row)
		}
		return columns, rows
	}
	for j, c := range ik {
		if fk, fv := orderedObject(iv[j]); fk != nil {
			for n, f := range fk {
				rows = append(rows, []string{c + "." + f, text(fv[n])})
			}
			continue
		}
		rows = append(rows, []string{c, text(iv[j])})
	}
	return []string{"name", "value"}, rows
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// orderedObject splits a JSON object into its keys and values, in order;
// nil for anything else.
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	keys := []string{}
	var vals []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil
		}
		keys = append(keys, tok.(string))
		vals = append(vals, v)
	}
	return keys, vals
}

// text shows a JSON value: a string as itself, anything else as JSON.
func text(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) == nil {
		return buf.String()
	}
	return string(v)
}

// carryOverRun finds the run whose open items v carried over: the job's
// carry_over names the previous result's folder, and only the result says
// which run wrote it (from_run_id, read from that folder's summary.json),
// so before the result there is the folder alone. A chain's first run
// carries nothing.
func carryOverRun(v *jobView) (runID, from string) {
	var job struct {
		CarryOver *struct {
			From string `json:"from"`
		} `json:"carry_over"`
	}
	if json.Unmarshal(v.Job, &job) != nil || job.CarryOver == nil || job.CarryOver.From == "" {
		return "", ""
	}
	if res := v.result(); res != nil && res.CarryOver != nil {
		if _, err := uuid.Parse(res.CarryOver.FromRunID); err == nil {
			runID = res.CarryOver.FromRunID
		}
	}
	return runID, job.CarryOver.From
}
