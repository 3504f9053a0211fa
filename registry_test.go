package kalla

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// openedSource is a Source that only remembers the URI it was opened with.
type openedSource struct {
	Source
	uri string
}

// TestRegistry holds the one registry type to its contract for both of its
// uses: schemes are case-insensitive, a plain path is "file", and an unknown
// scheme is a ValidationError on the registry's field that lists the
// supported schemes and never shows the URI's password.
func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	sources := NewSourceRegistry()
	sources.Register(func(_ context.Context, uri string) (Source, error) {
		return openedSource{uri: uri}, nil
	}, "file", "S3")
	for _, uri := range []string{"/data/a.csv", "s3://b/k.csv", "S3://b/k.csv"} {
		src, err := sources.Open(ctx, uri)
		if err != nil {
			t.Fatalf("Open(%q): %v", uri, err)
		}
		if got := src.(openedSource).uri; got != uri {
			t.Fatalf("Open(%q) opened %q", uri, got)
		}
	}

	outputs := NewOutputRegistry()
	outputs.Register(func(context.Context, string) (Output, error) { return nil, nil }, "file")

	for _, tc := range []struct {
		name  string
		open  func() error
		field string
		want  string
	}{
		{"source", func() error { _, err := sources.Open(ctx, "ftp://u:hunter2@h/x"); return err },
			"uri", `unsupported scheme "ftp"`},
		{"output", func() error { _, err := outputs.Open(ctx, "gs://u:hunter2@b/out"); return err },
			"output_path", `unsupported scheme "gs"`},
	} {
		err := tc.open()
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: error %v is not a *ValidationError", tc.name, err)
		}
		if ve.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, ve.Field, tc.field)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, "supported are file://") || strings.Contains(msg, "hunter2") {
			t.Errorf("%s: error %q: want %q, the supported schemes and no password", tc.name, msg, tc.want)
		}
	}
}
