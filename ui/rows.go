package ui

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// pageRows is the number of rows a rows page shows.
const pageRows = 100

// The reserved columns the rows page filters on and sets apart; they
// appear when the job has rules or asks for reasons (issues 13, 14).
const (
	ruleColumn   = "_kalla_rule"
	reasonColumn = "_kalla_reason"
	nearPrefix   = "_kalla_near_"
)

// rowsView is the data of the rows page.
type rowsView struct {
	RunID, File string
	Page        *kalla.RowPage
	// Own and Near split the columns: the row's own, and its nearest
	// candidate's (_kalla_near_*), shown side by side.
	Own, Near []int
	Rule      string
	Reason    string
	Search    string
	// SearchKeys are the key columns a search looks in.
	SearchKeys []string
	PageNo     int64
	From, To   int64
	Prev, Next string
	// Query is the filter part of this page's URL; CSV the download of
	// the rows it selects.
	Query, CSV string
	// Files are the result's files, to switch between.
	Files []resultFile
}

// fileQuery reads the run, the file and the filters of a rows or download
// request, answering the error itself.
func (h *handler) fileQuery(w http.ResponseWriter, r *http.Request) (dir, location, file string, q kalla.RowQuery, ok bool) {
	v, ok := h.getRun(w, r)
	if !ok {
		return "", "", "", q, false
	}
	file = r.PathValue("file")
	if !slices.Contains(resultFiles, file) {
		h.fail(w, r, http.StatusNotFound, "A result has no file "+strconv.Quote(file)+"; it has matched, unmatched_left, unmatched_right and, as the job asks, suggested, expired_left and expired_right.")
		return "", "", "", q, false
	}
	if v.State != kalla.JobCompleted {
		h.fail(w, r, http.StatusNotFound, "Run "+v.RunID+" is "+string(v.State)+": only a completed run has result files.")
		return "", "", "", q, false
	}
	dir, location, note := h.resultDir(r.Context(), v)
	if note != "" {
		h.fail(w, r, http.StatusNotFound, note)
		return "", "", "", q, false
	}
	if _, err := os.Stat(filepath.Join(dir, file+".parquet")); err != nil {
		h.fail(w, r, http.StatusNotFound, "This result has no "+file+".parquet.")
		return "", "", "", q, false
	}
	params := r.URL.Query()
	q.Equal = map[string]string{}
	if s := params.Get("rule"); s != "" {
		q.Equal[ruleColumn] = s
	}
	if s := params.Get("reason"); s != "" {
		q.Equal[reasonColumn] = s
	}
	q.Search = strings.TrimSpace(params.Get("q"))
	q.SearchColumns = searchKeys(v.job(), file)
	return dir, location, file, q, true
}

// searchKeys are the columns a key search looks in: the primary key of the
// side an unmatched file holds; both sides' keys for matched and
// suggested (those the match query selected).
func searchKeys(job jobFields, file string) []string {
	keysOf := func(i int) []string {
		if i >= len(job.Sources) {
			return nil
		}
		alias := job.Sources[i].Alias
		for a, k := range job.PrimaryKeys {
			if strings.EqualFold(a, alias) {
				return k
			}
		}
		return nil
	}
	switch file {
	case "unmatched_left", "expired_left":
		return keysOf(0)
	case "unmatched_right", "expired_right":
		return keysOf(1)
	default:
		return slices.Concat(keysOf(0), keysOf(1))
	}
}

func (h *handler) rowsPage(w http.ResponseWriter, r *http.Request) {
	dir, location, file, q, ok := h.fileQuery(w, r)
	if !ok {
		return
	}
	pageNo := int64(1)
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > 1<<40 {
			h.fail(w, r, http.StatusBadRequest, "page must be a whole number from 1, got "+strconv.Quote(s)+".")
			return
		}
		pageNo = n
	}
	q.Offset, q.Limit = (pageNo-1)*pageRows, pageRows
	q.Facets = []string{ruleColumn, reasonColumn}
	pg, err := h.cfg.Browser.Rows(r.Context(), dir, file+".parquet", q)
	if err != nil {
		h.browseFailed(w, r, err)
		return
	}
	view := rowsView{
		RunID: r.PathValue("run_id"), File: file, Page: pg, PageNo: pageNo,
		Rule: q.Equal[ruleColumn], Reason: q.Equal[reasonColumn], Search: q.Search, SearchKeys: q.SearchColumns,
	}
	for i, c := range pg.Columns {
		if strings.HasPrefix(c, nearPrefix) {
			view.Near = append(view.Near, i)
		} else {
			view.Own = append(view.Own, i)
		}
	}
	filters := url.Values{}
	for k, v := range map[string]string{"rule": view.Rule, "reason": view.Reason, "q": view.Search} {
		if v != "" {
			filters.Set(k, v)
		}
	}
	view.Query = filters.Encode()
	view.Files = existingFiles(dir, location)
	view.CSV = "/ui/runs/" + url.PathEscape(view.RunID) + "/download/" + file + "?format=csv"
	if view.Query != "" {
		view.CSV += "&" + view.Query
	}
	if n := int64(len(pg.Rows)); n > 0 {
		view.From, view.To = q.Offset+1, q.Offset+n
	}
	link := func(p int64) string {
		v := url.Values{}
		for k, vs := range filters {
			v[k] = vs
		}
		v.Set("page", strconv.FormatInt(p, 10))
		return "/ui/runs/" + url.PathEscape(view.RunID) + "/rows/" + file + "?" + v.Encode()
	}
	if pageNo > 1 {
		view.Prev = link(pageNo - 1)
	}
	if q.Offset+pageRows < pg.Total {
		view.Next = link(pageNo + 1)
	}
	h.render(w, r, http.StatusOK, "rows", file+" of run "+view.RunID, view)
}

// browseFailed answers a failed read of a result file: a filter on a
// column the file lacks is the user's error, anything else is logged.
func (h *handler) browseFailed(w http.ResponseWriter, r *http.Request, err error) {
	var v *kalla.ValidationError
	if errors.As(err, &v) {
		h.fail(w, r, http.StatusBadRequest, v.Error())
		return
	}
	h.log.Error("read result file", "run_id", r.PathValue("run_id"), "file", r.PathValue("file"), "err", err)
	h.fail(w, r, http.StatusInternalServerError, "The result file could not be read; see the scheduler's log.")
}

// download sends a result file: ?format=csv streams the rows the filters
// select as CSV; ?format=parquet sends the whole file as written.
func (h *handler) download(w http.ResponseWriter, r *http.Request) {
	dir, _, file, q, ok := h.fileQuery(w, r)
	if !ok {
		return
	}
	name := r.PathValue("run_id") + "-" + file
	// A large file takes longer than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	switch format := r.URL.Query().Get("format"); format {
	case "parquet":
		f, err := os.Open(filepath.Join(dir, file+".parquet"))
		if err != nil {
			h.browseFailed(w, r, err)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			h.browseFailed(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.apache.parquet")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.parquet"`)
		http.ServeContent(w, r, "", st.ModTime(), f)
	case "csv", "":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		sw := &startedWriter{w: w}
		if err := h.cfg.Browser.WriteCSV(r.Context(), dir, file+".parquet", q, sw); err != nil {
			if !sw.started {
				w.Header().Del("Content-Disposition")
				h.browseFailed(w, r, err)
				return
			}
			// Headers are gone: break the connection, so the client sees a
			// failed download rather than a file cut short.
			h.log.Error("stream CSV", "run_id", r.PathValue("run_id"), "file", file, "err", err)
			panic(http.ErrAbortHandler)
		}
	default:
		h.fail(w, r, http.StatusBadRequest, "format must be csv or parquet, got "+strconv.Quote(format)+".")
	}
}

// startedWriter notes whether anything was written.
type startedWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.w.Write(p)
}
