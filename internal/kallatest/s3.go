package kallatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// S3Env selects the server S3 starts: "gofakes3" (the default, in
// process) or "versitygw" (a real S3 gateway process that verifies SigV4
// signatures, built on first use; see VersitygwEnv). scripts/test.sh runs
// the S3 tests against both.
const S3Env = "KALLA_TEST_S3"

// S3Server is an S3-compatible server for one test, reached on a 127.0.0.1
// socket, so the code under test speaks the real S3 HTTP protocol
// (SigV4-signed requests, ranged GETs, ListObjectsV2 pages, multipart
// uploads) through the real SDK.
//
// The server is gofakes3 (in memory, in process) or versitygw (a process
// with a posix backend), chosen by KALLA_TEST_S3. gofakes3 checks no
// signature, so S3Server refuses there any request not signed for
// AccessKeyID (403 InvalidAccessKeyId); versitygw checks the whole SigV4
// signature itself, and its test account is an ordinary one (not the
// root), so that Deny is a bucket policy it enforces. In front of either,
// a small HTTP layer records each request for assertions, runs the
// OnRequest hook and answers 403 AccessDenied for what DenyRequests names
// (one step of an operation failed on purpose); versitygw verifies the
// signature of every request forwarded to it.
type S3Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:port.
	Endpoint string
	// Region is the region clients should sign for.
	Region string
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	// They are random, so tests can search errors and logs for them.
	AccessKeyID     string
	SecretAccessKey string
	// Kind is the server: "gofakes3" or "versitygw".
	Kind string

	store  s3Store
	mu     sync.Mutex
	denyFn func(S3Request) bool
	log    []S3Request
	hook   func(*http.Request)
}

// s3Store is the server behind the front: its handler, and direct access
// for the test's own setup and checks (which the request log does not see).
type s3Store interface {
	handler() http.Handler
	verifiesSignatures() bool
	createBucket(ctx context.Context, bucket string) error
	put(ctx context.Context, bucket, key string, data []byte) error
	get(ctx context.Context, bucket, key string) ([]byte, error)
	keys(ctx context.Context, bucket, prefix string) ([]string, error)
	deny(ctx context.Context, bucket string) error
	pid() int
}

// S3Request is one request the server received, for assertions on how a
// client used the protocol.
type S3Request struct {
	Host   string
	Method string
	Bucket string
	Key    string
	Query  url.Values
	Range  string // the Range header
}

// Op names the S3 operation of r (the common ones).
func (r S3Request) Op() string {
	switch {
	case r.Method == http.MethodGet && r.Key == "" && r.Query.Get("list-type") == "2":
		return "ListObjectsV2"
	case r.Method == http.MethodGet && r.Key != "":
		return "GetObject"
	case r.Method == http.MethodHead && r.Key != "":
		return "HeadObject"
	case r.Method == http.MethodPost && r.Query.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPut && r.Query.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPost && r.Query.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && r.Query.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodPut && r.Key != "":
		return "PutObject"
	case r.Method == http.MethodDelete && r.Key != "":
		return "DeleteObject"
	}
	return r.Method + " " + r.Bucket
}

// S3 starts an S3 server for tb, of the kind KALLA_TEST_S3 names; it stops
// when tb ends.
func S3(tb testing.TB) *S3Server {
	tb.Helper()
	s := &S3Server{
		Region:          "us-east-1",
		AccessKeyID:     "AKIAKALLA" + strings.ToUpper(s3Random(6)),
		SecretAccessKey: "kalla-secret-" + s3Random(14),
		Kind:            os.Getenv(S3Env),
	}
	switch s.Kind {
	case "", "gofakes3":
		s.Kind, s.store = "gofakes3", newFakeStore(s.AccessKeyID)
	case "versitygw":
		st, err := startVersitygw(tb, s.Region, s.AccessKeyID, s.SecretAccessKey)
		if err != nil {
			tb.Fatalf("kallatest: %v", err)
		}
		s.store = st
	default:
		tb.Fatalf("kallatest: %s=%q: want gofakes3 or versitygw", S3Env, s.Kind)
	}
	srv := httptest.NewServer(s.front(s.store.handler()))
	tb.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	return s
}

// VerifiesSignatures reports whether the server checks the SigV4 signature
// (so that a wrong secret key is refused), not only the access key.
func (s *S3Server) VerifiesSignatures() bool { return s.store.verifiesSignatures() }

// PID is the server's process id, or 0 when it runs in the test's process.
func (s *S3Server) PID() int { return s.store.pid() }

func s3Random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// front records each request, runs the hook, and answers AccessDenied for
// the requests DenyRequests names.
func (s *S3Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		req := S3Request{Host: r.Host, Method: r.Method, Bucket: bucket, Key: key, Query: r.URL.Query(), Range: r.Header.Get("Range")}
		s.mu.Lock()
		s.log = append(s.log, req)
		hook, denied := s.hook, s.denyFn != nil && s.denyFn(req)
		s.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		if denied {
			s3Error(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>kallatest</RequestId></Error>`,
			code, msg, r.URL.Path)
	}
}

// Config returns an SDK configuration for the server: its endpoint,
// region and credentials, nothing read from the environment.
func (s *S3Server) Config() aws.Config {
	return aws.Config{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	}
}

// env is the AWS environment that points a client at the server: its
// endpoint, region and access keys; shared files (empty ones in dir),
// profiles and instance metadata turned off. An empty value means unset.
func (s *S3Server) env(dir string) map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":            s.Endpoint,
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_REGION":                  s.Region,
		"AWS_ACCESS_KEY_ID":           s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       s.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// Setenv points the AWS environment at the server, for code that loads its
// configuration the default way: AWS_ENDPOINT_URL, AWS_REGION and the access
// keys are set; shared files, profiles and instance metadata are turned off.
// Like t.Setenv, it cannot be used in parallel tests.
func (s *S3Server) Setenv(t *testing.T) {
	t.Helper()
	for k, v := range s.env(t.TempDir()) {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k) // t.Setenv still restores it
		}
	}
}

// Env is Setenv for a child process: NAME=value entries to append to its
// environment (after os.Environ(), so they win). Variables Setenv unsets
// are set empty, which the AWS SDK takes for unset.
func (s *S3Server) Env(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for k, v := range s.env(tb.TempDir()) {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// CreateBucket creates bucket.
func (s *S3Server) CreateBucket(tb testing.TB, bucket string) {
	tb.Helper()
	if err := s.store.createBucket(context.Background(), bucket); err != nil {
		tb.Fatalf("create bucket %s: %v", bucket, err)
	}
}

// Put stores data as bucket/key.
func (s *S3Server) Put(tb testing.TB, bucket, key string, data []byte) {
	tb.Helper()
	if err := s.store.put(context.Background(), bucket, key, data); err != nil {
		tb.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// Get returns the content of bucket/key, failing tb if it does not exist.
func (s *S3Server) Get(tb testing.TB, bucket, key string) []byte {
	tb.Helper()
	data, err := s.store.get(context.Background(), bucket, key)
	if err != nil {
		tb.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	return data
}

// Keys lists the keys of bucket below prefix, sorted.
func (s *S3Server) Keys(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	keys, err := s.store.keys(context.Background(), bucket, prefix)
	if err != nil {
		tb.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
	}
	return keys
}

// Deny makes every request of the test's credentials on bucket answer 403
// AccessDenied. On versitygw it is the server's own answer: a bucket policy
// denies the test's account everything on the bucket.
func (s *S3Server) Deny(tb testing.TB, bucket string) {
	tb.Helper()
	if err := s.store.deny(context.Background(), bucket); err != nil {
		tb.Fatalf("deny s3://%s: %v", bucket, err)
	}
}

// DenyRequests makes the requests for which fn returns true answer 403
// AccessDenied (an error the SDK does not retry), to fail one step of an
// operation, such as one part of a multipart upload.
func (s *S3Server) DenyRequests(fn func(S3Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyFn = fn
}

// OnRequest sets a function called with each request before it is served,
// for tests that stall or count requests. It runs on the server's goroutine.
func (s *S3Server) OnRequest(fn func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Requests returns the requests received so far, in order of arrival.
func (s *S3Server) Requests() []S3Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]S3Request(nil), s.log...)
}

// ResetRequests forgets the requests received so far.
func (s *S3Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}
