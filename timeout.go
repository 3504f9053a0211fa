package kalla

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// JobTimeoutError is why a job was stopped when it ran longer than its
// limit (--job-timeout). Unlike a cancellation it is a failure, and unlike
// a runner's death it is not retried: another attempt would time out too.
type JobTimeoutError struct {
	Limit time.Duration
}

func (e *JobTimeoutError) Error() string {
	return fmt.Sprintf("job exceeded --job-timeout %s", e.Limit)
}

// WithJobTimeout bounds ctx by limit; limit <= 0 sets no bound. When the
// bound is reached, ctx is cancelled (DuckDB queries are interrupted) and
// JobTimeout(ctx) returns the *JobTimeoutError.
func WithJobTimeout(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	if limit <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, limit, &JobTimeoutError{Limit: limit})
}

// JobTimeout returns the *JobTimeoutError that stopped ctx, or nil if ctx
// is live or was stopped for another reason.
func JobTimeout(ctx context.Context) *JobTimeoutError {
	var te *JobTimeoutError
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &te) {
		return te
	}
	return nil
}
