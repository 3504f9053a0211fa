package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/kalla-dev/kalla"
)

// submitForm is the submit page's form: a job's fields one by one, or a
// whole job as JSON (JSON set).
type submitForm struct {
	RunID, CallbackURL, MatchSQL, OutputPath      string
	LeftAlias, LeftURI, LeftKeys, LeftFilters     string
	RightAlias, RightURI, RightKeys, RightFilters string
	JSON                                          string
	// Errors are the API's error by form input name; General is an error
	// no input owns.
	Errors  map[string]string
	General string
}

func (h *handler) submitPage(w http.ResponseWriter, r *http.Request) {
	f := submitForm{RunID: kalla.NewRunID(), LeftAlias: "left_src", RightAlias: "right_src"}
	h.render(w, r, http.StatusOK, "submit", "Submit a job", &f)
}

// submit posts the job to the API (POST /api/jobs), which validates it by
// its own rules; an error comes back next to the input its field names.
func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	v := r.PostForm.Get
	f := submitForm{
		RunID: strings.TrimSpace(v("run_id")), CallbackURL: strings.TrimSpace(v("callback_url")), MatchSQL: v("match_sql"), OutputPath: strings.TrimSpace(v("output_path")),
		LeftAlias: strings.TrimSpace(v("left_alias")), LeftURI: strings.TrimSpace(v("left_uri")), LeftKeys: v("left_keys"), LeftFilters: v("left_filters"),
		RightAlias: strings.TrimSpace(v("right_alias")), RightURI: strings.TrimSpace(v("right_uri")), RightKeys: v("right_keys"), RightFilters: v("right_filters"),
		JSON: v("job_json"), Errors: map[string]string{},
	}
	body, input, msg := f.job()
	if msg != "" {
		f.Errors[input] = msg
		h.render(w, r, http.StatusBadRequest, "submit", "Submit a job", &f)
		return
	}
	a, err := h.api.call(r.Context(), http.MethodPost, "/api/jobs", body)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	var accepted struct {
		RunID string `json:"run_id"`
	}
	if (a.status == http.StatusAccepted || a.status == http.StatusOK) && json.Unmarshal(a.body, &accepted) == nil {
		h.log.Info("job submitted from the console", "run_id", accepted.RunID)
		http.Redirect(w, r, "/ui/runs/"+url.PathEscape(accepted.RunID)+"?notice=submitted", http.StatusSeeOther)
		return
	}
	e := a.err()
	msg = h.redact(e.Error)
	if in := f.inputOf(e.Field); in == "job_json" && e.Field != "" {
		f.Errors[in] = e.Field + ": " + msg
	} else if in != "" {
		f.Errors[in] = msg
	} else {
		f.General = msg
		if e.Field != "" {
			f.General = e.Field + ": " + msg
		}
	}
	h.render(w, r, a.status, "submit", "Submit a job", &f)
}

// job builds the JSON body to submit, or names the input that cannot be
// made into one.
func (f *submitForm) job() (body []byte, input, msg string) {
	if strings.TrimSpace(f.JSON) != "" {
		return f.pastedJob()
	}
	src := func(alias, uri, filters string) (map[string]any, string) {
		s := map[string]any{"alias": alias, "uri": uri}
		if strings.TrimSpace(filters) != "" {
			var fl []json.RawMessage
			if err := json.Unmarshal([]byte(filters), &fl); err != nil {
				return nil, "must be a JSON array of filters, e.g. [{\"column\": \"status\", \"op\": \"eq\", \"value\": \"open\"}]: " + err.Error()
			}
			s["filters"] = fl
		}
		return s, ""
	}
	left, m := src(f.LeftAlias, f.LeftURI, f.LeftFilters)
	if m != "" {
		return nil, "left_filters", m
	}
	right, m := src(f.RightAlias, f.RightURI, f.RightFilters)
	if m != "" {
		return nil, "right_filters", m
	}
	job := map[string]any{
		"run_id": f.RunID, "match_sql": f.MatchSQL, "output_path": f.OutputPath,
		"sources":      []any{left, right},
		"primary_keys": map[string][]string{f.LeftAlias: splitKeys(f.LeftKeys), f.RightAlias: splitKeys(f.RightKeys)},
	}
	if f.CallbackURL != "" {
		job["callback_url"] = f.CallbackURL
	}
	b, err := json.Marshal(job)
	if err != nil {
		return nil, "", err.Error()
	}
	return b, "", ""
}

// pastedJob is the pasted job JSON, given the form's run id when it has
// none (a job file written for kallad run, such as examples/job.json,
// usually has none; the API requires one).
func (f *submitForm) pastedJob() (body []byte, input, msg string) {
	var job map[string]json.RawMessage
	if json.Unmarshal([]byte(f.JSON), &job) != nil || f.RunID == "" {
		return []byte(f.JSON), "", "" // the API names what is wrong
	}
	if id, ok := job["run_id"]; ok && string(id) != `""` && string(id) != "null" {
		return []byte(f.JSON), "", ""
	}
	id, err := json.Marshal(f.RunID)
	if err != nil {
		return nil, "", err.Error()
	}
	job["run_id"] = id
	b, err := json.Marshal(job)
	if err != nil {
		return nil, "", err.Error()
	}
	return b, "", ""
}

// splitKeys reads a comma-separated list of key columns.
func splitKeys(s string) []string {
	out := []string{}
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// inputOf is the form input that holds the job field an API error names;
// "" when none does. A job given as JSON has its errors under the JSON.
func (f *submitForm) inputOf(field string) string {
	if strings.TrimSpace(f.JSON) != "" {
		return "job_json"
	}
	switch field {
	case "run_id", "callback_url", "match_sql", "output_path":
		return field
	}
	for i, side := range []string{"left", "right"} {
		p := "sources[" + string(rune('0'+i)) + "]"
		switch {
		case field == p+".alias":
			return side + "_alias"
		case field == p+".uri":
			return side + "_uri"
		case strings.HasPrefix(field, p+".filters"):
			return side + "_filters"
		}
	}
	if alias, ok := strings.CutPrefix(field, "primary_keys."); ok {
		switch {
		case strings.EqualFold(alias, f.LeftAlias):
			return "left_keys"
		case strings.EqualFold(alias, f.RightAlias):
			return "right_keys"
		}
	}
	return ""
}
