package kalla

import (
	"context"
	"sync"
)

// Output is where a job's result files go. The engine writes them into a
// local folder; Publish then makes them visible at once, summary.json last,
// so a reader that sees summary.json for a run sees all of that run's files.
type Output interface {
	// Prepare returns an empty local folder for the result files.
	Prepare(ctx context.Context) (dir string, err error)
	// Location returns where the file called name is visible after Publish.
	Location(name string) string
	// Publish moves the files of dir into place, replacing a previous
	// result, and removes dir.
	Publish(ctx context.Context, dir string) error
	// Discard removes dir after a failure; the previous result is untouched.
	Discard(dir string) error
}

// OutputOpener opens an output_path without doing I/O.
type OutputOpener = Opener[Output]

// NewOutputRegistry returns an empty registry of output_path schemes; an
// unknown scheme is reported on the field "output_path".
func NewOutputRegistry() *Registry[Output] { return NewRegistry[Output]("output_path") }

// publishing holds the output locations being published in this process.
// Adapters may lock across processes too (local folders do, with flock);
// this lock serialises the publishes of one process for every adapter,
// S3 included, so two jobs of one scheduler never interleave their writes
// to one output_path.
var publishing = struct {
	sync.Mutex
	held map[string]chan struct{}
}{held: map[string]chan struct{}{}}

// publishOutput publishes dir through out, after any other publish of this
// process to the same location, waiting for it until ctx is done, and once
// the publish check ctx carries (WithPublishCheck) has passed.
func publishOutput(ctx context.Context, out Output, dir string) error {
	key := out.Location(SummaryFile)
	for {
		publishing.Lock()
		busy, ok := publishing.held[key]
		if !ok {
			publishing.held[key] = make(chan struct{})
			publishing.Unlock()
			break
		}
		publishing.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() {
		publishing.Lock()
		close(publishing.held[key])
		delete(publishing.held, key)
		publishing.Unlock()
	}()
	if err := checkPublish(ctx); err != nil {
		return err
	}
	return out.Publish(ctx, dir)
}
