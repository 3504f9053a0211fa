package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// apiClient calls the job API's handler in process. The console has
// already authenticated the user by the API's rules, so it presents the
// API token, or a loopback address in protected mode.
type apiClient struct {
	h     http.Handler
	token string
}

// apiAnswer is an answer of the API: its status and JSON body.
type apiAnswer struct {
	status int
	body   []byte
}

// apiError is the API's error body.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field"`
	Code  string `json:"code"`
}

func (a apiAnswer) err() apiError {
	var e apiError
	if json.Unmarshal(a.body, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("the job API answered %d", a.status)
	}
	return e
}

// recorder is the ResponseWriter of an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (c apiClient) call(ctx context.Context, method, path string, body []byte) (apiAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return apiAnswer{}, fmt.Errorf("call the job API: %w", err)
	}
	req.RemoteAddr = "127.0.0.1:0"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	rec := &recorder{header: http.Header{}}
	c.h.ServeHTTP(rec, req)
	return apiAnswer{status: rec.status, body: rec.body.Bytes()}, nil
}

// get calls GET path and decodes a 200 answer into v.
func (c apiClient) get(ctx context.Context, path string, v any) (apiAnswer, error) {
	a, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil || a.status != http.StatusOK {
		return a, err
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return a, fmt.Errorf("decode the job API's answer to %s: %w", path, err)
	}
	return a, nil
}

// jobView is a run as GET /api/jobs/{run_id} shows it. Job and Result are
// kept as JSON too, so that fields this console does not know (a job's
// rules, a result's per-rule counts, reasons, ageing) are still shown.
type jobView struct {
	RunID           string                  `json:"run_id"`
	State           kalla.JobState          `json:"state"`
	Stage           kalla.Stage             `json:"stage"`
	Progress        float64                 `json:"progress"`
	Source          string                  `json:"source"`
	RowsRead        int64                   `json:"rows_read"`
	MatchedSoFar    *int64                  `json:"matched_so_far"`
	Job             json.RawMessage         `json:"job"`
	Result          json.RawMessage         `json:"result"`
	Error           *kalla.ErrorReport      `json:"error"`
	CancelRequested bool                    `json:"cancel_requested"`
	Attempts        []kalla.Attempt         `json:"attempts"`
	Callback        *kalla.CallbackDelivery `json:"callback"`
	CreatedAt       time.Time               `json:"created_at"`
	StartedAt       *time.Time              `json:"started_at"`
	FinishedAt      *time.Time              `json:"finished_at"`
}

// result decodes the counts of a completed run; nil before.
func (v *jobView) result() *kalla.Result {
	if len(v.Result) == 0 || string(v.Result) == "null" {
		return nil
	}
	var r kalla.Result
	if json.Unmarshal(v.Result, &r) != nil {
		return nil
	}
	return &r
}

// jobFields are the parts of the job the pages use.
type jobFields struct {
	Sources []struct {
		Alias string `json:"alias"`
	} `json:"sources"`
	OutputPath  string              `json:"output_path"`
	PrimaryKeys map[string][]string `json:"primary_keys"`
}

func (v *jobView) job() jobFields {
	var j jobFields
	_ = json.Unmarshal(v.Job, &j)
	return j
}

// jobList is the answer to GET /api/jobs.
type jobList struct {
	Jobs []jobView `json:"jobs"`
	Next *string   `json:"next"`
}

// clusterView is the answer to GET /api/cluster.
type clusterView struct {
	Executors []distributed.ExecutorInfo `json:"executors"`
}
