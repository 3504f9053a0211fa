package kalla

import (
	"context"
	"strings"
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
type OutputOpener func(ctx context.Context, path string) (Output, error)

// OutputRegistry maps output_path schemes to their adapters.
type OutputRegistry struct {
	mu      sync.RWMutex
	openers map[string]OutputOpener
}

// NewOutputRegistry returns an empty registry.
func NewOutputRegistry() *OutputRegistry {
	return &OutputRegistry{openers: map[string]OutputOpener{}}
}

// Register makes paths with the given schemes open with fn.
func (r *OutputRegistry) Register(fn OutputOpener, schemes ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range schemes {
		r.openers[strings.ToLower(s)] = fn
	}
}

// Open opens path with the adapter of its scheme.
func (r *OutputRegistry) Open(ctx context.Context, path string) (Output, error) {
	r.mu.RLock()
	fn, ok := r.openers[Scheme(path)]
	r.mu.RUnlock()
	if !ok {
		return nil, Invalid("output_path", "unsupported scheme %q in %s", Scheme(path), RedactURI(path))
	}
	return fn(ctx, path)
}

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
