package s3

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kalla-dev/kalla"
)

// Source is an S3 object, prefix or glob of CSV or Parquet data. The engine
// fetches it into a local folder and reads it there.
type Source struct {
	c   *Client
	loc location
}

// OpenSource parses uri; it does no I/O. A malformed URI (no bucket, an
// unknown extension) is a *kalla.ValidationError for the field "uri".
func (c *Client) OpenSource(_ context.Context, uri string) (kalla.Source, error) {
	loc, err := parseSource(uri)
	if err != nil {
		return nil, err
	}
	if err := c.cfg.Buckets.CheckName("bucket", loc.bucket); err != nil {
		return nil, kalla.Invalid("uri", "%v", err)
	}
	return &Source{c: c, loc: loc}, nil
}

// Close implements kalla.Source; a Source holds no resources.
func (*Source) Close() error { return nil }

// String returns the source's URI.
func (s *Source) String() string { return s.loc.String() }

// Fetch downloads the source's objects into dir with parallel ranged GETs
// and returns them as local files. A missing bucket or key, or denied
// access, is a *kalla.ValidationError for "uri"; cancelling ctx stops every
// transfer.
func (s *Source) Fetch(ctx context.Context, dir string) (*kalla.FileSource, error) {
	start := time.Now()
	api, err := s.c.session(ctx, s.loc.String())
	if err != nil {
		return nil, err
	}
	var objs []*object
	format := s.loc.format
	if s.loc.kind == kindObject {
		objs = []*object{{key: s.loc.key, size: -1, path: filepath.Join(dir, localName(s.loc.key))}}
	} else {
		if objs, format, err = s.list(ctx, api); err != nil {
			return nil, err
		}
		for i, o := range objs {
			o.path = filepath.Join(dir, fmt.Sprintf("%06d-%s", i, localName(o.key)))
		}
	}
	d := &downloader{c: s.c, api: api, loc: s.loc, field: "uri"}
	if err := d.run(ctx, objs); err != nil {
		return nil, err
	}
	var size int64
	for _, o := range objs {
		size += o.size
	}
	elapsed := time.Since(start)
	s.c.cfg.Logger.Info("s3 source fetched", "uri", s.loc.String(), "objects", len(objs), "bytes", size,
		"elapsed", elapsed.Round(time.Millisecond), "mib_per_s", fmt.Sprintf("%.1f", float64(size)/(1<<20)/max(elapsed.Seconds(), 1e-6)))
	pattern := objs[0].path
	if s.loc.kind != kindObject {
		// dir is ours alone and holds only these files.
		pattern = filepath.Join(dir, "*")
	}
	return &kalla.FileSource{Pattern: pattern, Format: format}, nil
}

// list pages through the keys below the source's prefix (or the fixed part
// of its pattern) and keeps the data objects. It fails when they mix CSV
// and Parquet or when there are none.
func (s *Source) list(ctx context.Context, api *s3.Client) ([]*object, kalla.FileFormat, error) {
	prefix := s.loc.key
	if s.loc.kind == kindGlob {
		prefix = prefix[:strings.IndexAny(prefix, "*?[")]
	}
	o := op{field: "uri", verb: "list", action: "s3:ListBucket", bucket: s.loc.bucket, uri: s.loc.String()}
	var objs []*object
	var first = map[kalla.FileFormat]string{}
	err := s.c.list(ctx, api, s.loc.bucket, prefix, o, func(item types.Object) {
		key := aws.ToString(item.Key)
		if s.loc.kind == kindGlob {
			if ok, _ := path.Match(s.loc.key, key); !ok {
				return
			}
		}
		base := path.Base(key)
		format, known := formatOf(key)
		if !known || aws.ToInt64(item.Size) == 0 || strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") {
			return
		}
		if _, seen := first[format]; !seen {
			first[format] = key
		}
		objs = append(objs, &object{key: key, size: aws.ToInt64(item.Size), etag: aws.ToString(item.ETag)})
	})
	if err != nil {
		return nil, "", err
	}
	switch {
	case len(first) > 1:
		return nil, "", kalla.Invalid("uri", "%s holds both CSV (%s) and Parquet (%s) objects, and a source must be one "+
			"format: narrow the prefix or use a pattern such as %s*.parquet", s.loc.String(),
			s.loc.objectURI(first[kalla.FormatCSV]), s.loc.objectURI(first[kalla.FormatParquet]), s.loc.objectURI(prefix))
	case len(objs) == 0:
		return nil, "", kalla.Invalid("uri", "no CSV or Parquet object under %s", s.loc.String())
	}
	if _, ok := first[kalla.FormatParquet]; ok {
		return objs, kalla.FormatParquet, nil
	}
	return objs, kalla.FormatCSV, nil
}

// list calls fn with every object whose key starts with prefix, a page of
// PageSize keys at a time.
func (c *Client) list(ctx context.Context, api *s3.Client, bucket, prefix string, o op, fn func(types.Object)) error {
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{
		Bucket:  aws.String(bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(c.cfg.PageSize),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return c.translate(err, o)
		}
		for _, item := range page.Contents {
			fn(item)
		}
	}
	return nil
}

// localName turns the last part of key into a file name that keeps its
// extensions (DuckDB detects compression from them) and holds no glob or
// path characters.
func localName(key string) string {
	b := []byte(path.Base(key))
	for i, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '.', ch == '-', ch == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[len(b)-128:]
	}
	return string(b)
}
