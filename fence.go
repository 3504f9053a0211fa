package kalla

import "context"

type publishCheckKey struct{}

// WithPublishCheck returns ctx carrying check, which publishing the job's
// result calls at the last moment, right before the output is replaced: a
// runner that may have lost its job to another (a scheduler that stalled
// past its heartbeats while another took the job over) refuses there, so
// that only the job's owner publishes. An error from check fails the
// publish with that error, and the previous result stays in place.
func WithPublishCheck(ctx context.Context, check func(context.Context) error) context.Context {
	return context.WithValue(ctx, publishCheckKey{}, check)
}

// checkPublish runs the check ctx carries, if any.
func checkPublish(ctx context.Context) error {
	if check, ok := ctx.Value(publishCheckKey{}).(func(context.Context) error); ok {
		return check(ctx)
	}
	return nil
}
