package kallahttp

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/kalla-dev/kalla"
)

// apiCode names an error answer of the API. Clients switch on the code, not
// on the message.
type apiCode string

// The API's error codes, with their HTTP statuses in apiStatus.
const (
	codeInvalidJob       apiCode = "invalid_job"
	codeInvalidRunID     apiCode = "invalid_run_id"
	codeInvalidQuery     apiCode = "invalid_query"
	codeUnauthorized     apiCode = "unauthorized"
	codeForbidden        apiCode = "forbidden"
	codeNotFound         apiCode = "not_found"
	codeRunIDConflict    apiCode = "run_id_conflict"
	codeAlreadyFinished  apiCode = "already_finished"
	codeBodyTooLarge     apiCode = "body_too_large"
	codeUnsupportedMedia apiCode = "unsupported_media_type"
	codeInternal         apiCode = "internal"
	codeUnavailable      apiCode = "unavailable"
	codeQueueFull        apiCode = "queue_full"
	codeStoreFull        apiCode = "store_full"
	codeMethodNotAllowed apiCode = "method_not_allowed"
	codeNoSuchRoute      apiCode = "no_such_route"
	codeBusy             apiCode = "busy"
	codeJobFailed        apiCode = "job_failed"
	// codeTooManyAttempts refuses a client that sent too many wrong tokens.
	codeTooManyAttempts apiCode = "too_many_attempts"
)

// apiStatus is the one table of error codes and their HTTP statuses.
var apiStatus = map[apiCode]int{
	codeInvalidJob:       http.StatusBadRequest,
	codeInvalidRunID:     http.StatusBadRequest,
	codeInvalidQuery:     http.StatusBadRequest,
	codeUnauthorized:     http.StatusUnauthorized,
	codeForbidden:        http.StatusForbidden,
	codeNotFound:         http.StatusNotFound,
	codeNoSuchRoute:      http.StatusNotFound,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	codeRunIDConflict:    http.StatusConflict,
	codeAlreadyFinished:  http.StatusConflict,
	codeBodyTooLarge:     http.StatusRequestEntityTooLarge,
	codeUnsupportedMedia: http.StatusUnsupportedMediaType,
	codeInternal:         http.StatusInternalServerError,
	codeUnavailable:      http.StatusServiceUnavailable,
	codeQueueFull:        http.StatusTooManyRequests,
	codeStoreFull:        http.StatusServiceUnavailable,
	codeBusy:             http.StatusTooManyRequests,
	codeJobFailed:        http.StatusUnprocessableEntity,
	codeTooManyAttempts:  http.StatusTooManyRequests,
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	// Field is the JSON path of the offending field of a job, when one is
	// to blame (e.g. "sources[1].uri").
	Field string `json:"field,omitempty"`
	Code  string `json:"code"`
	// Stage is the stage a dry run failed in (code job_failed).
	Stage kalla.Stage `json:"stage,omitempty"`
}

func writeError(w http.ResponseWriter, code apiCode, field, msg string) {
	status, ok := apiStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, ErrorBody{Error: msg, Field: field, Code: string(code)})
}

// internalError logs err and answers 500 without leaking its details.
func internalError(w http.ResponseWriter, log *slog.Logger, what string, err error) {
	log.Error(what, "err", err)
	writeError(w, codeInternal, "", what)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
