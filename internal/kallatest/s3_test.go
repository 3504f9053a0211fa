package kallatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestS3Server checks the server of either kind through the SDK: what the
// helpers store is what a client reads, the request log sees the client's
// requests, Deny refuses the test's keys, and unknown keys are refused.
func TestS3Server(t *testing.T) {
	t.Parallel()
	srv := kallatest.S3(t)
	t.Logf("server: %s", srv.Kind)
	srv.CreateBucket(t, "data")
	srv.Put(t, "data", "a/k.csv", []byte("a\n1\n"))
	ctx := context.Background()
	api := s3.NewFromConfig(srv.Config(), func(o *s3.Options) { o.UsePathStyle = true })
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("a/k.csv"), Range: aws.String("bytes=2-")})
	if err != nil {
		t.Fatalf("ranged GET: %v", err)
	}
	var got bytes.Buffer
	got.ReadFrom(out.Body)
	out.Body.Close()
	if got.String() != "1\n" {
		t.Errorf("bytes=2- of a\\n1\\n = %q", got.String())
	}
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("a/b.csv"), Body: strings.NewReader("b")}); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if keys := srv.Keys(t, "data", "a/"); strings.Join(keys, ",") != "a/b.csv,a/k.csv" {
		t.Errorf("Keys = %q", keys)
	}
	if string(srv.Get(t, "data", "a/b.csv")) != "b" {
		t.Error("Get does not see the client's PUT")
	}
	if reqs := srv.Requests(); len(reqs) != 2 || reqs[0].Op() != "GetObject" || reqs[0].Range != "bytes=2-" || reqs[1].Op() != "PutObject" {
		t.Errorf("requests logged: %+v, want the GET and the PUT", reqs)
	}

	srv.Deny(t, "data")
	_, err = api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("a/k.csv")})
	if code := apiCode(err); code != "AccessDenied" {
		t.Errorf("GET on a denied bucket: %v, want AccessDenied", err)
	}

	cfg := srv.Config()
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIAUNKNOWNUNKNOWN", srv.SecretAccessKey, "")
	_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
	if code := apiCode(err); code != "InvalidAccessKeyId" {
		t.Errorf("unknown access key: %v, want InvalidAccessKeyId", err)
	}
}

// TestVersitygwProcess checks what versitygw adds: a wrong secret is
// refused, no key is on the process's command line, and the process is
// gone when its test ends. It runs with KALLA_TEST_S3=versitygw (as
// scripts/test.sh does).
func TestVersitygwProcess(t *testing.T) {
	if os.Getenv(kallatest.S3Env) != "versitygw" {
		t.Skipf("%s is not versitygw", kallatest.S3Env)
	}
	t.Parallel()
	var pid int
	t.Run("running", func(t *testing.T) {
		srv := kallatest.S3(t)
		pid = srv.PID()
		if !srv.VerifiesSignatures() || pid == 0 {
			t.Fatalf("versitygw: verifies signatures %v, pid %d", srv.VerifiesSignatures(), pid)
		}
		cfg := srv.Config()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKeyID, "not-"+srv.SecretAccessKey, "")
		_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(context.Background(), &s3.ListBucketsInput{})
		if code := apiCode(err); code != "SignatureDoesNotMatch" {
			t.Errorf("wrong secret: %v, want SignatureDoesNotMatch", err)
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(cmdline, []byte("versitygw")) {
			t.Fatalf("pid %d runs %q", pid, cmdline)
		}
		if bytes.Contains(cmdline, []byte("AKIA")) || bytes.Contains(cmdline, []byte("secret")) {
			t.Errorf("a key is on versitygw's command line: %q", cmdline)
		}
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("versitygw (pid %d) still there after its test: %v", pid, err)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
