package kalla

import (
	"errors"
	"fmt"
)

// ErrCancelled reports that a job was stopped on request, not by a fault.
var ErrCancelled = errors.New("job cancelled")

// ValidationError is a user error in a job: it names the offending field
// (a JSON path such as "sources[1].uri") so that a client can point at it.
type ValidationError struct {
	Field   string
	Message string
}

// Error masks any secret in the message (RedactText): it is shown to the
// client that sent the job and written to logs.
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return RedactText(e.Message)
	}
	return e.Field + ": " + RedactText(e.Message)
}

// Invalid returns a *ValidationError for field with a formatted message.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// IsValidation reports whether err is, or wraps, a *ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// StageError records the stage a job was in when it failed, so that the error
// callback and the CLI can say where it went wrong.
type StageError struct {
	Stage Stage
	Err   error
}

// Error masks any secret in the cause (RedactText): it becomes the job's
// error callback and API error.
func (e *StageError) Error() string { return RedactText(e.Err.Error()) }
func (e *StageError) Unwrap() error { return e.Err }

// ErrorStage returns the stage recorded in err, or StageValidating when err
// carries none.
func ErrorStage(err error) Stage {
	var s *StageError
	if errors.As(err, &s) {
		return s.Stage
	}
	return StageValidating
}
