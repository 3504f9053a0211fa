package kallatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kalla-dev/kalla/internal/childproc"
)

// The versitygw release the tests run against, built from the Go module
// proxy with `go install`, so that no registry but Go's is needed and the
// main go.mod does not depend on it.
const (
	versitygwModule  = "github.com/versity/versitygw"
	versitygwVersion = "v1.8.0"
)

// VersitygwEnv names a versitygw binary to use instead of the one built
// into the user's cache folder.
const VersitygwEnv = "KALLA_TEST_VERSITYGW"

// versitygwStore is a versitygw process (posix backend, its root a temp
// folder) listening on a Unix socket of its own, so that no two servers
// can race for a port; the S3Server's front forwards to it. It verifies
// SigV4 like S3 itself: a wrong secret gets SignatureDoesNotMatch.
type versitygwStore struct {
	cmd    *exec.Cmd
	sock   string
	access string
	api    *s3.Client // the test's account, straight to the socket
	root   *s3.Client // the root account, which bucket policies do not bind
	proxy  *httputil.ReverseProxy
	logBuf *lockedBuffer
}

// startVersitygw starts a versitygw for tb whose one account (besides a
// root with random keys of its own) has the given keys and may create
// buckets; the process is stopped when tb ends.
func startVersitygw(tb testing.TB, region, access, secret string) (*versitygwStore, error) {
	bin, err := versitygwBinary()
	if err != nil {
		return nil, err
	}
	root, iamDir := tb.TempDir(), tb.TempDir()
	// A socket path must fit in 108 bytes, which a test's TempDir may not.
	sockDir, err := os.MkdirTemp("", "kvgw")
	if err != nil {
		return nil, fmt.Errorf("versitygw: socket folder: %w", err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	st := &versitygwStore{sock: filepath.Join(sockDir, "s3.sock"), access: access, logBuf: &lockedBuffer{}}

	// The test's account: "userplus" may create buckets, and owns those it
	// creates, but bucket policies apply to it (unlike the root).
	users, err := json.Marshal(map[string]any{"accessAccounts": map[string]any{
		access: map[string]any{"access": access, "secret": secret, "role": "userplus"},
	}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(iamDir, "users.json"), users, 0o600); err != nil {
		return nil, fmt.Errorf("versitygw: write users: %w", err)
	}
	rootAccess, rootSecret := "AKIAROOT"+strings.ToUpper(s3Random(6)), "root-secret-"+s3Random(14)

	// The root keys go through the environment, not argv, which ps shows.
	// With an IAM folder an unknown access key also gets S3's 403
	// InvalidAccessKeyId; the single-account mode answers 404
	// XAdminUserNotFound, which no real S3 does.
	cmd := exec.Command(bin, "--port", st.sock, "--quiet", "--iam-dir", iamDir, "posix", root)
	cmd.Env = []string{"ROOT_ACCESS_KEY=" + rootAccess, "ROOT_SECRET_KEY=" + rootSecret, "VGW_REGION=" + region, "HOME=" + root}
	cmd.Stdout, cmd.Stderr = st.logBuf, st.logBuf
	var waitErr error
	exited, err := childproc.Start(cmd, syscall.SIGKILL, &waitErr)
	if err != nil {
		return nil, fmt.Errorf("versitygw: start %s: %w", bin, err)
	}
	st.cmd = cmd
	tb.Cleanup(func() { childproc.Stop(cmd, exited, syscall.SIGTERM, 10*time.Second) })

	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", st.sock)
		},
		// The client's own Accept-Encoding (if any) goes through as sent.
		DisableCompression:  true,
		MaxIdleConnsPerHost: 32,
	}
	tb.Cleanup(transport.CloseIdleConnections)
	// The front forwards each request with its Host header unchanged:
	// versitygw checks the signature the client made for that host.
	st.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", r.In.Host
			r.Out.Host = r.In.Host
		},
		Transport: transport,
		// A client that hung up (a cancelled fetch) is no error to log; any
		// other failure to reach versitygw goes back in the 502's body.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
			if r.Context().Err() == nil {
				fmt.Fprintf(w, "kallatest: versitygw: %v\n%s", err, st.logBuf.String())
			}
		},
	}
	client := func(access, secret string) *s3.Client {
		return s3.New(s3.Options{
			Region:       region,
			BaseEndpoint: aws.String("http://versitygw.local"),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
			HTTPClient:   &http.Client{Transport: transport},
		})
	}
	st.api, st.root = client(access, secret), client(rootAccess, rootSecret)

	// Ready when it answers HTTP on the socket (403 to an unsigned GET).
	probe := &http.Client{Transport: transport, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := probe.Get("http://versitygw.local/")
		if err == nil {
			resp.Body.Close()
			return st, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("versitygw exited (%v) before answering:\n%s", waitErr, st.logBuf.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("versitygw did not answer on %s within 30s:\n%s", st.sock, st.logBuf.String())
		}
	}
}

func (st *versitygwStore) handler() http.Handler { return st.proxy }

func (st *versitygwStore) verifiesSignatures() bool { return true }

func (st *versitygwStore) pid() int { return st.cmd.Process.Pid }

func (st *versitygwStore) createBucket(ctx context.Context, bucket string) error {
	_, err := st.api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	return err
}

func (st *versitygwStore) put(ctx context.Context, bucket, key string, data []byte) error {
	_, err := st.api.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)})
	return err
}

func (st *versitygwStore) get(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := st.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func (st *versitygwStore) keys(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(st.api, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// deny puts a bucket policy that denies the test's account everything on
// bucket: an explicit deny, which beats the ownership that allows it.
func (st *versitygwStore) deny(ctx context.Context, bucket string) error {
	policy, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":    "Deny",
			"Principal": map[string]any{"AWS": []string{st.access}},
			"Action":    []string{"s3:*"},
			"Resource":  []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
		}},
	})
	if err != nil {
		return err
	}
	_, err = st.root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(string(policy))})
	return err
}

var (
	vgwOnce sync.Once
	vgwBin  string
	vgwErr  error
)

// versitygwBinary returns the versitygw to run: $KALLA_TEST_VERSITYGW, or
// the one in the user's cache folder, built there on first use (a few
// minutes cold, seconds with a warm Go build cache). A file lock keeps test
// binaries running in parallel from building it twice.
func versitygwBinary() (string, error) {
	vgwOnce.Do(func() { vgwBin, vgwErr = findVersitygw() })
	return vgwBin, vgwErr
}

func findVersitygw() (string, error) {
	if bin := os.Getenv(VersitygwEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", VersitygwEnv, err)
		}
		return bin, nil
	}
	dir, err := VersitygwDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("versitygw: cache folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("versitygw: lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("versitygw: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test binary built it while we waited
	}
	if err := buildVersitygw(dir); err != nil {
		return "", err
	}
	return bin, nil
}

// VersitygwDir is the cache folder of the versitygw binary the tests
// build: <user cache>/kalla-test/versitygw-<version>.
func VersitygwDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("versitygw: no cache folder (set %s to a versitygw binary): %w", VersitygwEnv, err)
	}
	return filepath.Join(cache, "kalla-test", "versitygw-"+versitygwVersion), nil
}

// buildVersitygw runs `go install` into a temp folder of dir and renames
// the binary into place, so that a build cut short leaves nothing behind.
func buildVersitygw(dir string) error {
	tmp, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	defer os.RemoveAll(tmp)
	pkg := versitygwModule + "/cmd/versitygw@" + versitygwVersion
	cmd := exec.Command("go", "install", "-ldflags=-s -w", pkg)
	cmd.Dir = tmp // outside any module
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	fmt.Fprintf(os.Stderr, "kallatest: building %s into %s (once)\n", pkg, dir)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("versitygw: go install %s: %w\n%s", pkg, err, strings.TrimSpace(out.String()))
	}
	fmt.Fprintf(os.Stderr, "kallatest: built versitygw in %s\n", time.Since(start).Round(time.Second))
	if err := os.Rename(filepath.Join(tmp, "versitygw"), filepath.Join(dir, "versitygw")); err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	return nil
}

// lockedBuffer collects a child's output, written from two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
