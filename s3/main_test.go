package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/s3"
)

// TestMain fails a passing run that leaves a goroutine of this package
// running.
func TestMain(m *testing.M) { kallatest.MainWithLeakCheck(m, "kalla-dev/kalla/s3.") }

// testBundle is what a test needs besides the client under test.
type testBundle struct {
	srv  *kallatest.S3Server
	logs *testLog
}

// setup starts an S3 server with a bucket "data" and returns a client
// configured explicitly for it (nothing from the environment), tuned by cfg.
func setup(t *testing.T, cfg s3.Config) (*s3.Client, *testBundle) {
	t.Helper()
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "data")
	aws := srv.Config()
	cfg.AWS = &aws
	logs := &testLog{t: t}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return s3.New(cfg), &testBundle{srv: srv, logs: logs}
}

// testLog sends log lines to t.Log and keeps them for assertions.
type testLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fetch opens uri with c and fetches it into a new temporary folder.
func fetch(ctx context.Context, t *testing.T, c *s3.Client, uri string) (*kalla.FileSource, error) {
	t.Helper()
	src, err := c.OpenSource(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return src.(*s3.Source).Fetch(ctx, t.TempDir())
}

// mustFetch is fetch for tests that expect success.
func mustFetch(t *testing.T, c *s3.Client, uri string) *kalla.FileSource {
	t.Helper()
	fs, err := fetch(context.Background(), t, c, uri)
	if err != nil {
		t.Fatalf("fetch %s: %v", uri, err)
	}
	return fs
}

// countOps counts the requests of srv by operation.
func countOps(srv *kallatest.S3Server) map[string]int {
	n := map[string]int{}
	for _, r := range srv.Requests() {
		n[r.Op()]++
	}
	return n
}

// csvRows makes a CSV of n invoices whose customer names hold commas,
// quotes and newlines, so that rows span range boundaries in every way.
func csvRows(n int) []byte {
	var b bytes.Buffer
	b.WriteString("invoice_id,customer,amount,note\n")
	for i := range n {
		fmt.Fprintf(&b, "INV-%05d,\"Customer %d, \"\"Ltd\"\"\nFloor %d\",%d.%02d,%s\n", i, i%97, i%7, 10+i*3, i%100, strings.Repeat("x", i%13))
	}
	return b.Bytes()
}
