package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/s3"
)

// writeResult fills a prepared output folder with result files of the
// given sizes and a summary.
func writeResult(t *testing.T, dir string, sizes map[string]int, summary string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{kalla.SummaryFile: []byte(summary)}
	for name, n := range sizes {
		files[name] = make([]byte, n)
		rand.Read(files[name])
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func openOutput(t *testing.T, c *s3.Client, path string) kalla.Output {
	t.Helper()
	out, err := c.OpenOutput(context.Background(), path)
	if err != nil {
		t.Fatalf("open output %s: %v", path, err)
	}
	return out
}

func TestPublishMultipartSummaryLast(t *testing.T) {
	t.Parallel()
	// A PartSize below S3's minimum is raised to it: a real store refuses
	// the smaller parts (EntityTooSmall) when the upload completes.
	const partSize = s3.MinPartSize
	c, b := setup(t, s3.Config{PartSize: 1000, Concurrency: 3})
	b.srv.CreateBucket(t, "results")
	out := openOutput(t, c, "s3://results/runs/r1/")
	if got := out.Location(kalla.MatchedFile); got != "s3://results/runs/r1/matched.parquet" {
		t.Fatalf("Location = %s", got)
	}
	ctx := context.Background()
	dir, err := out.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := writeResult(t, dir, map[string]int{
		kalla.MatchedFile:        4*partSize + 3456, // 5 parts, the last one small
		kalla.UnmatchedLeftFile:  partSize,
		kalla.UnmatchedRightFile: 0,
	}, `{"run_id":"r1"}`)
	if err := out.Publish(ctx, dir); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for name, want := range files {
		if got := b.srv.Get(t, "results", "runs/r1/"+name); !bytes.Equal(got, want) {
			t.Errorf("%s: uploaded %d bytes, want %d identical", name, len(got), len(want))
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("local folder %s still there after Publish: %v", dir, err)
	}

	ops := countOps(b.srv)
	if ops["CreateMultipartUpload"] != 1 || ops["UploadPart"] != 5 || ops["CompleteMultipartUpload"] != 1 {
		t.Errorf("want one multipart upload of 5 parts for matched.parquet, got %v", ops)
	}
	// The previous summary goes first, the new one last.
	var writes []string
	for _, r := range b.srv.Requests() {
		switch r.Op() {
		case "DeleteObject", "PutObject", "CompleteMultipartUpload":
			writes = append(writes, r.Op()+" "+r.Key)
		}
	}
	if len(writes) != 5 || writes[0] != "DeleteObject runs/r1/summary.json" || writes[4] != "PutObject runs/r1/summary.json" {
		t.Errorf("writes in order: %q; want the old summary deleted first and the new one put last", writes)
	}
}

func TestPublishReplacesPreviousRun(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	out := openOutput(t, c, "s3://data")
	ctx := context.Background()
	for _, run := range []string{"first", "second"} {
		dir, err := out.Prepare(ctx)
		if err != nil {
			t.Fatal(err)
		}
		files := writeResult(t, dir, map[string]int{kalla.MatchedFile: 100}, `{"run_id":"`+run+`"}`)
		if err := out.Publish(ctx, dir); err != nil {
			t.Fatalf("publish %s: %v", run, err)
		}
		for name, want := range files {
			if got := b.srv.Get(t, "data", name); !bytes.Equal(got, want) {
				t.Errorf("run %s: %s not replaced", run, name)
			}
		}
	}
	if got := out.Location(kalla.SummaryFile); got != "s3://data/summary.json" {
		t.Errorf("Location at the bucket root = %s", got)
	}
}

func TestDiscardLeavesPreviousResult(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	b.srv.Put(t, "data", "out/summary.json", []byte("previous"))
	out := openOutput(t, c, "s3://data/out")
	dir, err := out.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	writeResult(t, dir, map[string]int{kalla.MatchedFile: 10}, "{}")
	if err := out.Discard(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Discard left %s", dir)
	}
	if got := string(b.srv.Get(t, "data", "out/summary.json")); got != "previous" {
		t.Errorf("previous summary = %q", got)
	}
	if ops := countOps(b.srv); len(ops) != 0 {
		t.Errorf("Prepare and Discard made requests: %v", ops)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	b.srv.CreateBucket(t, "locked")
	b.srv.Deny(t, "locked")
	for _, tc := range []struct{ path, want string }{
		{"s3://missing-bucket/out", `bucket "missing-bucket" does not exist`},
		{"s3://locked/out", "access denied to s3://locked/out/summary.json"},
	} {
		out := openOutput(t, c, tc.path)
		dir, err := out.Prepare(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		writeResult(t, dir, map[string]int{kalla.MatchedFile: 10}, "{}")
		err = out.Publish(context.Background(), dir)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "output_path" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an output_path error containing %q", tc.path, err, tc.want)
		}
		out.Discard(dir)
	}
}

func TestPublishAbortsFailedMultipart(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{PartSize: s3.MinPartSize, Concurrency: 2})
	b.srv.Put(t, "data", "out/summary.json", []byte("previous"))
	b.srv.DenyRequests(func(r kallatest.S3Request) bool {
		return r.Op() == "UploadPart" && r.Query.Get("partNumber") == "3"
	})
	out := openOutput(t, c, "s3://data/out")
	dir, err := out.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Discard(dir)
	writeResult(t, dir, map[string]int{kalla.MatchedFile: 2*s3.MinPartSize + 500}, "{}") // 3 parts
	err = out.Publish(context.Background(), dir)
	if !strings.Contains(err.Error(), "access denied to s3://data/out/matched.parquet") {
		t.Fatalf("got %v, want access denied naming the file", err)
	}
	// An abort that races a part still being written server-side (its
	// request cancelled when part 3 failed) may fail with a 500, which the
	// SDK retries, as S3 documents: "it might be necessary to abort a given
	// multipart upload multiple times". What counts is that none is left.
	ops := countOps(b.srv)
	if ops["AbortMultipartUpload"] == 0 || ops["CompleteMultipartUpload"] != 0 {
		t.Errorf("want the upload aborted, not completed: %v", ops)
	}
	cfg := b.srv.Config()
	uploads, err := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true }).
		ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String("data")})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Errorf("multipart uploads left after the abort: %v (%v)", uploads, err)
	}
	// No summary: a reader does not take what is there for a result.
	if keys := b.srv.Keys(t, "data", "out/"); len(keys) != 0 {
		t.Errorf("objects left after a failed publish: %v", keys)
	}
}

// TestPublishAbortFailureLogged checks that an upload whose abort fails
// for good is logged with its upload id, for the operator to clean up.
func TestPublishAbortFailureLogged(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{PartSize: s3.MinPartSize, Concurrency: 1})
	b.srv.DenyRequests(func(r kallatest.S3Request) bool {
		return (r.Op() == "UploadPart" && r.Query.Get("partNumber") == "2") || r.Op() == "AbortMultipartUpload"
	})
	out := openOutput(t, c, "s3://data/out")
	dir, err := out.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Discard(dir)
	writeResult(t, dir, map[string]int{kalla.MatchedFile: s3.MinPartSize + 500}, "{}") // 2 parts
	if err := out.Publish(context.Background(), dir); err == nil {
		t.Fatal("publish succeeded with part 2 denied")
	}
	var uploadID string
	for _, r := range b.srv.Requests() {
		if r.Op() == "AbortMultipartUpload" {
			uploadID = r.Query.Get("uploadId")
		}
	}
	logs := b.logs.String()
	if uploadID == "" || !strings.Contains(logs, `msg="s3 multipart upload not aborted`) ||
		!strings.Contains(logs, "uri=s3://data/out/matched.parquet upload_id="+uploadID) {
		t.Errorf("abort of upload %q refused, but not logged with its id:\n%s", uploadID, logs)
	}
	for _, secret := range []string{b.srv.AccessKeyID, b.srv.SecretAccessKey} {
		if strings.Contains(logs, secret) {
			t.Error("the log shows a credential")
		}
	}
}
