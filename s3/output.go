package s3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kalla-dev/kalla"
)

// Output publishes a job's results below an S3 prefix. See the package
// documentation for why summary.json is the commit marker.
type Output struct {
	c   *Client
	loc location
}

var _ kalla.Output = (*Output)(nil)

// OpenOutput parses an output_path s3://bucket[/prefix]; it does no I/O. A
// malformed path is a *kalla.ValidationError for "output_path".
func (c *Client) OpenOutput(_ context.Context, path string) (kalla.Output, error) {
	loc, err := parseOutput(path)
	if err != nil {
		return nil, err
	}
	if err := c.cfg.Buckets.CheckName("bucket", loc.bucket); err != nil {
		return nil, kalla.Invalid("output_path", "%v", err)
	}
	return &Output{c: c, loc: loc}, nil
}

// Prepare returns a new local temporary folder for the result files.
func (o *Output) Prepare(context.Context) (string, error) {
	dir, err := os.MkdirTemp(o.c.cfg.TempDir, "kalla-s3-out-")
	if err != nil {
		return "", fmt.Errorf("create local folder for %s: %w", o.loc.String(), err)
	}
	return dir, nil
}

// Location returns s3://bucket/prefix/name.
func (o *Output) Location(name string) string { return o.loc.objectURI(o.key(name)) }

func (o *Output) key(name string) string {
	if o.loc.key == "" {
		return name
	}
	return o.loc.key + "/" + name
}

// Publish uploads the files of dir below the prefix, replacing a previous
// result: it deletes the previous summary.json first, uploads every other
// file, then summary.json, and removes dir. If it fails, the previous
// summary.json is gone, so no reader takes the half-replaced files for a
// complete result.
func (o *Output) Publish(ctx context.Context, dir string) error {
	start := time.Now()
	api, err := o.c.session(ctx, o.loc.String())
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	hasSummary := false
	for _, e := range entries {
		switch {
		case !e.Type().IsRegular():
		case e.Name() == kalla.SummaryFile:
			hasSummary = true
		default:
			names = append(names, e.Name())
		}
	}
	if !hasSummary {
		return fmt.Errorf("publish %s: %s has no %s", o.loc.String(), dir, kalla.SummaryFile)
	}
	sort.Strings(names)

	summary := o.key(kalla.SummaryFile)
	_, err = api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.loc.bucket), Key: aws.String(summary)})
	if err != nil {
		return o.c.translate(err, o.op("delete", "s3:DeleteObject", o.Location(kalla.SummaryFile)))
	}
	u := &uploader{c: o.c, api: api}
	var size int64
	for _, name := range append(names, kalla.SummaryFile) {
		n, err := u.upload(ctx, filepath.Join(dir, name), o.loc.bucket, o.key(name), contentType(name),
			o.op("write", "s3:PutObject", o.Location(name)))
		if err != nil {
			return err
		}
		size += n
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	o.c.cfg.Logger.Info("s3 output published", "uri", o.loc.String(), "files", len(names)+1, "bytes", size,
		"elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// Discard removes dir. Before Publish the previous result is untouched;
// after a failed Publish its summary.json is already gone (see Publish).
func (o *Output) Discard(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func (o *Output) op(verb, action, uri string) op {
	return op{field: "output_path", verb: verb, action: action, bucket: o.loc.bucket, uri: uri}
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	}
	return "application/octet-stream"
}
