package s3

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/parquet"
)

var _ kalla.Source = (*Source)(nil)

// tailSize is how much of a Parquet object's end is read first: its footer
// is usually smaller, else a second GET reads the rest.
const tailSize = 64 << 10

// parquetPart is the share of one Parquet object a split reads: some of
// its row groups. Size and ETag pin the object the footer was read from.
type parquetPart struct {
	Key       string `json:"key"`
	ETag      string `json:"etag,omitempty"`
	Size      int64  `json:"size"`
	FooterLen int64  `json:"footer_len"`
	Groups    []int  `json:"groups"`
}

// SplitFetch cuts the row groups of the source's Parquet objects into at
// most n splits of about equal compressed bytes, reading only the objects'
// footers. CSV sources, and Parquet objects whose schemas differ (each
// split must read with the same columns), are not cut: it returns nil.
func (s *Source) SplitFetch(ctx context.Context, n int) ([]kalla.SourceSplit, error) {
	if n < 2 {
		return nil, nil
	}
	api, objs, err := s.parquetObjects(ctx)
	if objs == nil || err != nil {
		return nil, err
	}
	type group struct {
		obj, index int
		bytes      int64
	}
	var groups []group
	var total int64
	parts := make([]parquetPart, len(objs))
	var first *parquet.Footer
	for i, o := range objs {
		f, footerLen, err := s.readFooter(ctx, api, o)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = f
		} else if !first.SameSchema(f) {
			return nil, nil
		}
		parts[i] = parquetPart{Key: o.key, ETag: o.etag, Size: o.size, FooterLen: footerLen}
		for k, rg := range f.RowGroups() {
			groups = append(groups, group{obj: i, index: k, bytes: rg.End - rg.Start})
			total += rg.End - rg.Start
		}
	}
	if len(groups) < 2 {
		return nil, nil
	}
	// Contiguous runs of row groups: a group goes to the split its middle
	// byte falls in, when the bytes are cut into n equal shares.
	var splits [][]parquetPart
	var sofar int64
	at := -1
	for _, g := range groups {
		if k := int(min((2*sofar+g.bytes)*int64(n)/max(2*total, 1), int64(n-1))); k > at {
			at = k
			splits = append(splits, nil)
		}
		cur := &splits[len(splits)-1]
		if len(*cur) == 0 || (*cur)[len(*cur)-1].Key != parts[g.obj].Key {
			p := parts[g.obj]
			p.Groups = nil
			*cur = append(*cur, p)
		}
		last := &(*cur)[len(*cur)-1]
		last.Groups = append(last.Groups, g.index)
		sofar += g.bytes
	}
	out := make([]kalla.SourceSplit, len(splits))
	for i, sp := range splits {
		data, err := json.Marshal(sp)
		if err != nil {
			return nil, err
		}
		out[i] = kalla.SourceSplit{Data: data}
	}
	return out, nil
}

// readFooter reads the footer of Parquet object o from its tail, and sets
// o's size and ETag (by a HEAD) when no listing did.
func (s *Source) readFooter(ctx context.Context, api *s3.Client, o *object) (*parquet.Footer, int64, error) {
	uri := s.loc.objectURI(o.key)
	if o.size < 0 {
		head, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.bucket), Key: aws.String(o.key)})
		if err != nil {
			return nil, 0, s.c.translate(err, op{field: "uri", verb: "read", action: "s3:GetObject", bucket: s.loc.bucket, uri: uri})
		}
		o.size, o.etag = aws.ToInt64(head.ContentLength), aws.ToString(head.ETag)
	}
	if o.size < 4+parquet.TailSize {
		return nil, 0, kalla.Invalid("uri", "read %s: %d bytes is too short for a Parquet file", uri, o.size)
	}
	// An explicit range: some stores refuse a suffix range longer than
	// the object.
	tail, err := s.getRange(ctx, api, o, fmt.Sprintf("bytes=%d-%d", max(o.size-tailSize, 0), o.size-1))
	if err != nil {
		return nil, 0, err
	}
	n, err := parquet.FooterLength(tail)
	if err != nil {
		return nil, 0, kalla.Invalid("uri", "read %s: %v", uri, err)
	}
	if n+parquet.TailSize > int64(len(tail)) {
		if n+parquet.TailSize > o.size {
			return nil, 0, kalla.Invalid("uri", "read %s: footer of %d bytes does not fit in %d", uri, n, o.size)
		}
		if tail, err = s.getRange(ctx, api, o, fmt.Sprintf("bytes=%d-%d", o.size-parquet.TailSize-n, o.size-1)); err != nil {
			return nil, 0, err
		}
	}
	f, err := parquet.ParseFooter(tail[int64(len(tail))-parquet.TailSize-n : int64(len(tail))-parquet.TailSize])
	if err != nil {
		return nil, 0, kalla.Invalid("uri", "read %s: %v", uri, err)
	}
	return f, n, nil
}

// getRange GETs one range of o whole, pinned to o's ETag.
func (s *Source) getRange(ctx context.Context, api *s3.Client, o *object, rng string) ([]byte, error) {
	uri := s.loc.objectURI(o.key)
	op := op{field: "uri", verb: "read", action: "s3:GetObject", bucket: s.loc.bucket, uri: uri}
	in := &s3.GetObjectInput{Bucket: aws.String(s.loc.bucket), Key: aws.String(o.key), Range: aws.String(rng)}
	if o.etag != "" {
		in.IfMatch = aws.String(o.etag)
	}
	out, err := api.GetObject(ctx, in)
	if err != nil {
		return nil, s.c.translate(err, op)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.c.translate(err, op)
	}
	return b, nil
}

// FetchSplit fetches one split made by SplitFetch into dir: for each of its
// objects the first bytes, the split's row groups and the footer, at their
// places in a sparse local file, and then a footer that lists only those
// row groups, so that each local file holds exactly the split's rows.
func (s *Source) FetchSplit(ctx context.Context, split kalla.SourceSplit, dir string) (*kalla.FileSource, error) {
	start := time.Now()
	var parts []parquetPart
	if err := json.Unmarshal(split.Data, &parts); err != nil || len(parts) == 0 {
		return nil, fmt.Errorf("split of %s: not a Parquet split (%v)", s.loc.String(), err)
	}
	api, err := s.c.session(ctx, s.loc.String())
	if err != nil {
		return nil, err
	}
	objs := make([]*object, len(parts))
	footers := make([]*parquet.Footer, len(parts))
	var fetched int64
	for i, p := range parts {
		o := &object{key: p.Key, etag: p.ETag, size: p.Size, path: filepath.Join(dir, fmt.Sprintf("%06d-%s", i, localName(p.Key)))}
		// The footer says where the row groups are; the local file gets
		// the first bytes (the magic) and the split's row groups at their
		// places, and a footer of its own after them.
		b, err := s.getRange(ctx, api, o, fmt.Sprintf("bytes=%d-%d", p.Size-parquet.TailSize-p.FooterLen, p.Size-parquet.TailSize-1))
		if err != nil {
			return nil, err
		}
		f, err := parquet.ParseFooter(b)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.loc.objectURI(p.Key), err)
		}
		groups := f.RowGroups()
		o.ranges = [][2]int64{{0, 4}}
		fetched += 4 + int64(len(b))
		for _, k := range p.Groups {
			if k < 0 || k >= len(groups) {
				return nil, fmt.Errorf("read %s: row group %d of %d (the object changed since the split)", s.loc.objectURI(p.Key), k, len(groups))
			}
			o.ranges = append(o.ranges, [2]int64{groups[k].Start, groups[k].End})
			fetched += groups[k].End - groups[k].Start
		}
		objs[i], footers[i] = o, f
	}
	d := &downloader{c: s.c, api: api, loc: s.loc, field: "uri"}
	if err := d.run(ctx, objs); err != nil {
		return nil, err
	}
	for i, p := range parts {
		if err := appendFooter(objs[i].path, footers[i], p.Groups); err != nil {
			return nil, fmt.Errorf("write the split's footer of %s: %w", s.loc.objectURI(p.Key), err)
		}
	}
	s.c.cfg.Logger.Info("s3 source split fetched", "uri", s.loc.String(), "objects", len(parts), "bytes", fetched,
		"elapsed", time.Since(start).Round(time.Millisecond))
	return &kalla.FileSource{Pattern: filepath.Join(dir, "*"), Format: kalla.FormatParquet}, nil
}

// appendFooter appends to the local file path a footer listing only groups.
func appendFooter(path string, f *parquet.Footer, groups []int) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	err = f.WriteSubset(out, groups)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// FetchSchema writes into dir, for each Parquet object of the source, a
// file with the object's columns and no row group, from its footer alone;
// a plan validates a job with them instead of fetching the data. CSV
// sources return nil: their column types depend on every value.
func (s *Source) FetchSchema(ctx context.Context, dir string) (*kalla.FileSource, error) {
	api, objs, err := s.parquetObjects(ctx)
	if objs == nil || err != nil {
		return nil, err
	}
	for i, o := range objs {
		f, _, err := s.readFooter(ctx, api, o)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("%06d-%s", i, localName(o.key)))
		if err := writeSchemaFile(path, f); err != nil {
			return nil, fmt.Errorf("write the columns of %s: %w", s.loc.objectURI(o.key), err)
		}
	}
	return &kalla.FileSource{Pattern: filepath.Join(dir, "*"), Format: kalla.FormatParquet}, nil
}

// writeSchemaFile writes a Parquet file of f's columns and no row.
func writeSchemaFile(path string, f *parquet.Footer) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, "PAR1")
	if err == nil {
		err = f.WriteSubset(out, nil)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// parquetObjects opens a session and lists the source's objects when they
// are Parquet; nil for CSV. A single object's size is not known yet (-1).
func (s *Source) parquetObjects(ctx context.Context) (*s3.Client, []*object, error) {
	api, err := s.c.session(ctx, s.loc.String())
	if err != nil {
		return nil, nil, err
	}
	if s.loc.kind == kindObject {
		if s.loc.format != kalla.FormatParquet {
			return nil, nil, nil
		}
		return api, []*object{{key: s.loc.key, size: -1}}, nil
	}
	objs, format, err := s.list(ctx, api)
	if err != nil || format != kalla.FormatParquet {
		return nil, nil, err
	}
	return api, objs, nil
}
