package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/kalla-dev/kalla/distributed"
)

// folderMarker is the object Create puts in a folder, which Exists looks
// for: S3 has no folders, and a job's folder holds no file until its first
// task publishes one.
const folderMarker = ".kalla-folder"

// deleteBatch is S3's limit on the keys of one DeleteObjects request.
const deleteBatch = 1000

// Staging is a staging prefix, s3://bucket/prefix, where the executors of a
// cluster exchange staged partitions and partial results. Executors fetch
// the files a task reads into a local folder with parallel ranged GETs, and
// upload the files it writes (multipart above PartSize); the scheduler only
// lists, checks and deletes keys. Failures are plain errors naming the key,
// never validation errors: they are not the job's fault.
type Staging struct {
	c   *Client
	loc location
}

var _ distributed.Staging = (*Staging)(nil)

// OpenStaging parses a staging prefix s3://bucket[/prefix]; it does no I/O.
func (c *Client) OpenStaging(uri string) (*Staging, error) {
	bucket, key, err := parseBucket(uri, "staging_path")
	if err != nil {
		return nil, err
	}
	key = strings.Trim(key, "/")
	if strings.ContainsAny(key, "*?[") {
		return nil, fmt.Errorf("staging path %q is a pattern, not a prefix", uri)
	}
	return &Staging{c: c, loc: location{bucket: bucket, key: key, kind: kindPrefix}}, nil
}

// String returns s3://bucket/prefix.
func (s *Staging) String() string { return s.loc.String() }

// key returns the object key of the staging key k.
func (s *Staging) key(k string) string {
	k = strings.Trim(path.Clean("/"+filepath.ToSlash(k)), "/")
	switch {
	case s.loc.key == "":
		return k
	case k == "":
		return s.loc.key
	}
	return s.loc.key + "/" + k
}

// local returns the path below dir of the staging key k.
func local(dir, k string) string {
	return filepath.Join(dir, filepath.FromSlash(path.Clean("/"+filepath.ToSlash(k))))
}

func (s *Staging) op(verb, action, key string) op {
	return op{verb: verb, action: action, bucket: s.loc.bucket, uri: s.loc.objectURI(key)}
}

func (s *Staging) session(ctx context.Context) (*s3.Client, error) {
	return s.c.session(ctx, "staging "+s.loc.String())
}

// Create puts a marker object in each folder keys.
func (s *Staging) Create(ctx context.Context, keys ...string) error {
	api, err := s.session(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		marker := s.key(k) + "/" + folderMarker
		_, err := api.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.loc.bucket), Key: aws.String(marker),
			Body: strings.NewReader(""), ContentLength: aws.Int64(0),
		})
		if err != nil {
			return s.c.translate(err, s.op("write", "s3:PutObject", marker))
		}
	}
	return nil
}

// Exists reports whether the marker Create put in the folder key is there.
func (s *Staging) Exists(ctx context.Context, key string) (bool, error) {
	api, err := s.session(ctx)
	if err != nil {
		return false, err
	}
	marker := s.key(key) + "/" + folderMarker
	_, err = api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.bucket), Key: aws.String(marker)})
	var missing *types.NotFound
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &missing), statusOf(err) == http.StatusNotFound:
		return false, nil
	}
	return false, s.c.translate(err, s.op("read", "s3:GetObject", marker))
}

// objects returns the keys of every object below the folder key, markers
// included.
func (s *Staging) objects(ctx context.Context, api *s3.Client, key string) ([]string, error) {
	prefix := s.key(key) + "/"
	var keys []string
	err := s.c.list(ctx, api, s.loc.bucket, prefix, s.op("list", "s3:ListBucket", prefix), func(o types.Object) {
		keys = append(keys, aws.ToString(o.Key))
	})
	return keys, err
}

// List returns the staging keys of the files below the folder key, sorted.
func (s *Staging) List(ctx context.Context, key string) ([]string, error) {
	api, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := s.objects(ctx, api, key)
	if err != nil {
		return nil, err
	}
	root := s.key("")
	var keys []string
	for _, k := range objs {
		if path.Base(k) == folderMarker {
			continue
		}
		if root != "" {
			k = strings.TrimPrefix(k, root+"/")
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// RemoveAll deletes every object below the folder key, markers included,
// in batches of 1000 keys.
func (s *Staging) RemoveAll(ctx context.Context, key string) error {
	api, err := s.session(ctx)
	if err != nil {
		return err
	}
	objs, err := s.objects(ctx, api, key)
	if err != nil {
		return err
	}
	for len(objs) > 0 {
		batch := objs[:min(deleteBatch, len(objs))]
		objs = objs[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.loc.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.c.translate(err, s.op("delete", "s3:DeleteObject", s.key(key)+"/"))
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return s.c.scrub(fmt.Errorf("delete %s: %s (%s), and %d more keys failed", s.loc.objectURI(aws.ToString(e.Key)),
				aws.ToString(e.Message), aws.ToString(e.Code), len(out.Errors)-1))
		}
	}
	return nil
}

// Fetch downloads the files keys below scratch/fetch with parallel ranged
// GETs and returns their paths.
func (s *Staging) Fetch(ctx context.Context, keys []string, scratch string) ([]string, error) {
	start := time.Now()
	api, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(keys))
	objs := make([]*object, len(keys))
	for i, k := range keys {
		paths[i] = local(filepath.Join(scratch, "fetch"), k)
		if err := os.MkdirAll(filepath.Dir(paths[i]), 0o755); err != nil {
			return nil, fmt.Errorf("create local folder for staged files: %w", err)
		}
		objs[i] = &object{key: s.key(k), size: -1, path: paths[i]}
	}
	d := &downloader{c: s.c, api: api, loc: s.loc}
	if err := d.run(ctx, objs); err != nil {
		return nil, err
	}
	var size int64
	for _, o := range objs {
		size += o.size
	}
	s.c.cfg.Logger.Debug("staged files fetched", "staging", s.loc.String(), "files", len(objs), "bytes", size,
		"elapsed", time.Since(start).Round(time.Millisecond))
	return paths, nil
}

// Output returns scratch/publish/<key>, creating its parent.
func (s *Staging) Output(_ context.Context, key, scratch string) (string, error) {
	dir := local(filepath.Join(scratch, "publish"), key)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("create local folder for staged files: %w", err)
	}
	return dir, nil
}

// Publish deletes what the folder key holds (files of an earlier delivery
// of the same task) and uploads the files below local into it, a few at a
// time.
func (s *Staging) Publish(ctx context.Context, dir, key string) error {
	start := time.Now()
	api, err := s.session(ctx)
	if err != nil {
		return err
	}
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("list files to stage: %w", err)
	}
	if err := s.RemoveAll(ctx, key); err != nil {
		return err
	}
	u := &uploader{c: s.c, api: api}
	g, gctx := errgroup.WithContext(ctx)
	// Each upload of a large file has Concurrency parts in flight already.
	g.SetLimit(max(1, s.c.cfg.Concurrency/4))
	sizes := make([]int64, len(files))
	for i, f := range files {
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return err
		}
		k := s.key(path.Join(filepath.ToSlash(key), filepath.ToSlash(rel)))
		g.Go(func() error {
			n, err := u.upload(gctx, f, s.loc.bucket, k, contentType(k), s.op("write", "s3:PutObject", k))
			sizes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var size int64
	for _, n := range sizes {
		size += n
	}
	s.c.cfg.Logger.Debug("staged files published", "staging", s.loc.String(), "key", key, "files", len(files), "bytes", size,
		"elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}
