package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// readAttempts bounds the GETs for one range whose body breaks off midway;
// each retry asks only for the bytes still missing. (The SDK retries failed
// requests itself, but not a body that fails while it is being read.)
const readAttempts = 3

// object is one S3 object and the local file it is fetched to.
type object struct {
	key  string
	size int64 // -1 until the first response tells it
	etag string
	path string
	// ranges, when set, are the only [off, end) byte ranges fetched, into a
	// file of the object's full size (sparse); size must be known.
	ranges [][2]int64

	f    *os.File
	left atomic.Int64 // ranges not yet written; the last one closes f
}

// span is the range [off, end) of obj. body, when set, is the response
// already received for it: the first range of an object whose size was
// unknown until that response.
type span struct {
	obj      *object
	off, end int64
	body     io.ReadCloser
}

// downloader fetches objects of one bucket with Concurrency ranged GETs in
// flight, across objects: a prefix of many small files is as parallel as one
// large file.
type downloader struct {
	c   *Client
	api *s3.Client
	loc location
	// field is the job field errors are validation errors of ("uri"); ""
	// for staging.
	field string
}

// bufs are the copy buffers of the ranges in flight: memory stays at
// Concurrency buffers whatever the object size.
var bufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// run fetches objs into their paths. Files are opened one object at a time,
// as its ranges are handed out, and closed by the last range written, so a
// prefix of thousands of objects holds few descriptors.
func (d *downloader) run(ctx context.Context, objs []*object) error {
	g, ctx := errgroup.WithContext(ctx)
	spans := make(chan span)
	for range d.c.cfg.Concurrency {
		g.Go(func() error {
			for sp := range spans {
				if err := d.fetch(ctx, sp); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(spans)
		for _, o := range objs {
			if err := d.schedule(ctx, o, spans); err != nil {
				return err
			}
		}
		return nil
	})
	err := g.Wait()
	if err != nil {
		// Files whose ranges did not all arrive are still open.
		for _, o := range objs {
			if o.f != nil && o.left.Load() > 0 {
				o.f.Close()
			}
		}
	}
	return err
}

// schedule creates o's local file at its full size and hands out its
// ranges. An object whose size is unknown (a single-object source) is asked
// for its first range here, and the response says the size: no HEAD needed.
func (d *downloader) schedule(ctx context.Context, o *object, spans chan<- span) error {
	var first io.ReadCloser
	whole := false
	if o.size < 0 {
		var err error
		if first, whole, err = d.first(ctx, o); err != nil {
			return err
		}
	}
	f, err := os.Create(o.path)
	if err == nil {
		err = f.Truncate(o.size)
	}
	if err != nil {
		if first != nil {
			first.Close()
		}
		return fmt.Errorf("create %s: %w", o.path, err)
	}
	rangeSize := d.c.cfg.RangeSize
	if whole {
		rangeSize = max(o.size, 1)
	}
	parts := o.ranges
	if parts == nil {
		parts = [][2]int64{{0, o.size}}
	}
	var n int64
	for _, r := range parts {
		n += (r[1] - r[0] + rangeSize - 1) / rangeSize
	}
	if n == 0 {
		return f.Close()
	}
	o.f = f
	o.left.Store(n)
	for _, r := range parts {
		for off := r[0]; off < r[1]; off += rangeSize {
			sp := span{obj: o, off: off, end: min(off+rangeSize, r[1])}
			if off == 0 {
				sp.body = first
			}
			select {
			case spans <- sp:
			case <-ctx.Done():
				if sp.body != nil {
					sp.body.Close()
				}
				return ctx.Err()
			}
		}
	}
	return nil
}

// first GETs the first range of o and sets its size and ETag. whole reports
// that the store ignored the Range header and sent the whole object.
func (d *downloader) first(ctx context.Context, o *object) (body io.ReadCloser, whole bool, err error) {
	uri := d.loc.objectURI(o.key)
	out, err := d.api.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.loc.bucket),
		Key:    aws.String(o.key),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", d.c.cfg.RangeSize-1)),
	})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		// S3 answers 416 to any range of an empty object.
		head, herr := d.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.loc.bucket), Key: aws.String(o.key)})
		if herr != nil {
			return nil, false, d.c.translate(herr, d.op(uri))
		}
		if aws.ToInt64(head.ContentLength) != 0 {
			return nil, false, d.c.translate(err, d.op(uri))
		}
		o.size, o.etag = 0, aws.ToString(head.ETag)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, d.c.translate(err, d.op(uri))
	}
	o.etag = aws.ToString(out.ETag)
	if out.ContentRange == nil {
		o.size = aws.ToInt64(out.ContentLength)
		return out.Body, true, nil
	}
	total, err := rangeTotal(*out.ContentRange)
	if err != nil {
		out.Body.Close()
		return nil, false, fmt.Errorf("read %s: %w", uri, err)
	}
	o.size = total
	return out.Body, false, nil
}

// fetch writes the range sp into its file. A body that breaks off is asked
// again for the missing bytes only; If-Match makes every GET fail rather
// than mix two versions of an object rewritten meanwhile.
func (d *downloader) fetch(ctx context.Context, sp span) error {
	o := sp.obj
	uri := d.loc.objectURI(o.key)
	off, body := sp.off, sp.body
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	for attempt := 1; off < sp.end; attempt++ {
		if body == nil {
			in := &s3.GetObjectInput{
				Bucket: aws.String(d.loc.bucket),
				Key:    aws.String(o.key),
				Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, sp.end-1)),
			}
			if o.etag != "" {
				in.IfMatch = aws.String(o.etag)
			}
			out, err := d.api.GetObject(ctx, in)
			if err != nil {
				return d.c.translate(err, d.op(uri))
			}
			if out.ContentRange == nil && (off != 0 || sp.end != o.size) {
				out.Body.Close()
				return fmt.Errorf("read %s: the store ignored the Range header of a ranged GET", uri)
			}
			body = out.Body
		}
		var rerr error
		off, rerr = copyAt(o.f, off, sp.end, body, *bp)
		body.Close()
		body = nil
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var werr *writeError
		if errors.As(rerr, &werr) {
			return rerr
		}
		if off < sp.end && attempt >= readAttempts {
			if rerr == nil {
				rerr = io.ErrUnexpectedEOF
			}
			return d.c.translate(fmt.Errorf("bytes %d-%d after %d attempts: %w", off, sp.end-1, attempt, rerr), d.op(uri))
		}
	}
	if o.left.Add(-1) == 0 {
		if err := o.f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", o.path, err)
		}
	}
	return nil
}

func (d *downloader) op(uri string) op {
	return op{field: d.field, verb: "read", action: "s3:GetObject", bucket: d.loc.bucket, uri: uri}
}

// writeError is a failure to write the local file, which no retry mends.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// copyAt copies body into f from off until end or the end of body, and
// returns the offset reached. It stops at end even if body has more.
func copyAt(f *os.File, off, end int64, body io.Reader, buf []byte) (int64, error) {
	for off < end {
		n, err := body.Read(buf[:min(int64(len(buf)), end-off)])
		if n > 0 {
			if _, werr := f.WriteAt(buf[:n], off); werr != nil {
				return off, &writeError{fmt.Errorf("write %s: %w", f.Name(), werr)}
			}
			off += int64(n)
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// rangeTotal returns the object size of a Content-Range header
// ("bytes 0-99/1234").
func rangeTotal(contentRange string) (int64, error) {
	_, total, ok := strings.Cut(contentRange, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("unexpected Content-Range %q", contentRange)
	}
	return n, nil
}
