package kalla

import (
	"context"
	"sort"
	"strings"
	"sync"
)

// Opener opens a T (a Source, an Output) from its URI without doing I/O; it
// returns a *ValidationError when the URI is malformed.
type Opener[T any] func(ctx context.Context, uri string) (T, error)

// Registry maps URI schemes to the adapters that open them, as Litestream's
// replica URLs do. cmd/kallad fills one for sources and one for outputs, so
// the root package knows no adapter.
type Registry[T any] struct {
	field   string
	mu      sync.RWMutex
	openers map[string]Opener[T]
}

// NewRegistry returns an empty registry whose unknown schemes are reported
// on field (the job field that holds the URI).
func NewRegistry[T any](field string) *Registry[T] {
	return &Registry[T]{field: field, openers: map[string]Opener[T]{}}
}

// Register makes URIs with the given schemes open with fn. The scheme "file"
// also serves plain paths.
func (r *Registry[T]) Register(fn Opener[T], schemes ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range schemes {
		r.openers[strings.ToLower(s)] = fn
	}
}

// Open opens uri with the adapter of its scheme.
func (r *Registry[T]) Open(ctx context.Context, uri string) (T, error) {
	scheme := Scheme(uri)
	r.mu.RLock()
	fn, ok := r.openers[scheme]
	r.mu.RUnlock()
	if !ok {
		var zero T
		return zero, Invalid(r.field, "unsupported scheme %q in %s: supported are %s", scheme, RedactURI(uri), r.schemes())
	}
	return fn(ctx, uri)
}

func (r *Registry[T]) schemes() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var s []string
	for k := range r.openers {
		s = append(s, k+"://")
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
