package kallatest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Server is an S3-compatible server for one test: gofakes3 with an
// in-memory backend, served by net/http on a 127.0.0.1 socket, so the code
// under test speaks the real S3 HTTP protocol (SigV4-signed requests, ranged
// GETs, ListObjectsV2 pages, multipart uploads) through the real SDK.
//
// gofakes3 does not check signatures; S3Server adds the access checks the
// tests need: a request must carry a SigV4 Authorization header for
// AccessKeyID (else 403 InvalidAccessKeyId, as S3 answers), and buckets
// passed to Deny answer 403 AccessDenied.
type S3Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:port.
	Endpoint string
	// Region is the region clients should sign for.
	Region string
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	// They are random, so tests can search errors and logs for them.
	AccessKeyID     string
	SecretAccessKey string

	backend *s3mem.Backend
	mu      sync.Mutex
	denied  map[string]bool
	denyFn  func(S3Request) bool
	log     []S3Request
	hook    func(*http.Request)
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

// S3 starts an S3 server for tb; it stops when tb ends.
func S3(tb testing.TB) *S3Server {
	tb.Helper()
	s := &S3Server{
		Region:          "us-east-1",
		AccessKeyID:     "AKIAKALLA" + strings.ToUpper(s3Random(6)),
		SecretAccessKey: "kalla-secret-" + s3Random(14),
		backend:         s3mem.New(),
		denied:          map[string]bool{},
	}
	fake := gofakes3.New(s.backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(s.guard(fake.Server()))
	tb.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	return s
}

func s3Random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var s3Credential = regexp.MustCompile(`Credential=([^/,\s]+)/`)

// guard records each request, runs the hook, and enforces the access rules.
func (s *S3Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		req := S3Request{Host: r.Host, Method: r.Method, Bucket: bucket, Key: key, Query: r.URL.Query(), Range: r.Header.Get("Range")}
		s.mu.Lock()
		s.log = append(s.log, req)
		hook, denied := s.hook, s.denied[bucket] || (s.denyFn != nil && s.denyFn(req))
		s.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		m := s3Credential.FindStringSubmatch(r.Header.Get("Authorization"))
		switch {
		case m == nil || m[1] != s.AccessKeyID:
			s3Error(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		case denied:
			s3Error(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
		default:
			next.ServeHTTP(w, r)
		}
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
	if err := s.backend.CreateBucket(bucket); err != nil {
		tb.Fatalf("create bucket %s: %v", bucket, err)
	}
}

// Put stores data as bucket/key.
func (s *S3Server) Put(tb testing.TB, bucket, key string, data []byte) {
	tb.Helper()
	if _, err := s.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		tb.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// Get returns the content of bucket/key, failing tb if it does not exist.
func (s *S3Server) Get(tb testing.TB, bucket, key string) []byte {
	tb.Helper()
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		tb.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer obj.Contents.Close()
	data, err := io.ReadAll(obj.Contents)
	if err != nil {
		tb.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	return data
}

// Keys lists the keys of bucket below prefix, sorted.
func (s *S3Server) Keys(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	list, err := s.backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		tb.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	sort.Strings(keys)
	return keys
}

// Deny makes every request on bucket answer 403 AccessDenied.
func (s *S3Server) Deny(bucket string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[bucket] = true
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
