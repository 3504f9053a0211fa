// Package s3 reads sources from, and writes results to, Amazon S3 and
// S3-compatible stores (MinIO, Ceph, R2, GCS interoperability).
//
// # Sources
//
// s3://bucket/key.csv (also .csv.gz and .csv.zst), s3://bucket/key.parquet,
// s3://bucket/prefix/ (every CSV or every Parquet object below the prefix)
// and s3://bucket/prefix/*.csv (a glob, matched with path.Match) are
// kalla.Sources read as files. Fetch (Read of the whole source) copies the objects into the engine's local
// folder with parallel ranged GETs, each range written at its offset in the
// local file, and hands the engine a *kalla.FileSource; DuckDB's own CSV and
// Parquet readers then read the files and apply the filters. Because the
// ranges reassemble each object byte for byte, a CSV row cut by a range
// boundary is read exactly once, quoted newlines included. Memory stays at one
// copy buffer per range in flight, whatever the object size.
//
// Below a prefix, objects whose names carry no CSV or Parquet extension are
// skipped (Spark's _SUCCESS and .crc files, for example), as are hidden names
// (starting with "." or "_") and empty objects (folder markers); mixing CSV
// and Parquet objects is an error.
//
// # Outputs
//
// An output_path s3://bucket/prefix receives matched.parquet,
// unmatched_left.parquet, unmatched_right.parquet and summary.json. The
// engine writes them into a local temporary folder; Publish deletes the
// previous run's summary.json, uploads the Parquet files (multipart above
// PartSize) and uploads summary.json last.
//
// summary.json is the commit marker: a reader that sees summary.json for a
// run sees all of that run's files, because every upload before it has
// completed and S3 is strongly consistent for reads after writes. Each object
// appears whole (a PUT or a completed multipart upload is atomic). A reader
// that polls while a rerun is in progress may see the Parquet files of the new
// run before its summary.json: read summary.json first, then the files, then
// check that summary.json still carries the same run_id.
//
// # Configuration
//
// The client is configured the AWS way, by config.LoadDefaultConfig:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
// (us-east-1 when unset), AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, AWS_PROFILE
// and the shared config and credentials files. Path-style addressing
// (http://host/bucket/key) is used when the endpoint's host is an IP address
// or localhost, and whenever KALLA_S3_PATH_STYLE=true. Configuration is read
// at the first fetch or publish, not when a URI is opened: opening only parses.
//
// Errors name the bucket and key. Missing buckets and keys and denied access
// are *kalla.ValidationError values for the field "uri" (sources) or
// "output_path" (outputs); missing or rejected credentials wrap
// ErrCredentials. Access keys, secret keys and session tokens never appear in
// an error or a log line: every error leaving the package is scrubbed of the
// credentials in use.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/kalla-dev/kalla"
)

// Defaults for Config. AWS recommends 8-16 MiB ranges; one S3 connection
// carries roughly 100 MB/s, so 16 in flight are needed to fill a 10 Gbit/s
// link. On loopback against the test server (BenchmarkFetch, 2 vCPUs, 256
// MiB) 1, 4 and 16 ranges in flight fetched 584, 640 and 796 MB/s. Memory
// stays at one 256 KiB copy buffer per range in flight whatever the sizes.
const (
	DefaultRangeSize   = 16 << 20
	DefaultConcurrency = 16
	DefaultPartSize    = 16 << 20
	DefaultPageSize    = 1000
)

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10000

// MinPartSize is S3's smallest part (but the last) of a multipart upload:
// CompleteMultipartUpload fails with EntityTooSmall below it. A smaller
// Config.PartSize is raised to it.
const MinPartSize = 5 << 20

// ErrCredentials reports that no AWS credentials were found, or that the
// store rejected them.
var ErrCredentials = errors.New("AWS credentials")

// Config tunes a Client; zero values take the defaults.
type Config struct {
	// AWS is the SDK configuration to use. Nil means config.LoadDefaultConfig
	// (environment, shared files, profiles), loaded at first use.
	AWS *aws.Config
	// PathStyle forces path-style addressing. It is also on when the
	// endpoint host is an IP address or localhost, or KALLA_S3_PATH_STYLE=true.
	PathStyle bool
	// RangeSize is the size of each ranged GET.
	RangeSize int64
	// Concurrency bounds the ranged GETs, and the parts of one upload, in
	// flight at once.
	Concurrency int
	// PartSize is the size of multipart upload parts; smaller files go in one
	// PUT. S3 needs at least MinPartSize (except for the last part), so a
	// smaller value is raised to it.
	PartSize int64
	// PageSize is the number of keys asked for per listing page (max 1000).
	PageSize int32
	// TempDir is where outputs are prepared; empty means os.TempDir().
	TempDir string
	// Buckets are the buckets jobs may read and write (sources and
	// output_path); nil allows any. The staging bucket, chosen by the
	// operator, is not checked.
	Buckets *kalla.AllowList
	Logger  *slog.Logger
}

// Client opens S3 sources and outputs. It is safe for concurrent use; its
// S3 client and connections are shared by every source and output it opens.
type Client struct {
	cfg Config

	mu      sync.Mutex
	api     *s3.Client
	creds   aws.CredentialsProvider
	secrets map[string]bool
}

// New returns a Client. It does no I/O.
func New(cfg Config) *Client {
	if cfg.RangeSize <= 0 {
		cfg.RangeSize = DefaultRangeSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	cfg.PartSize = max(cfg.PartSize, MinPartSize)
	if cfg.PageSize <= 0 || cfg.PageSize > 1000 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, secrets: map[string]bool{}}
}

// defaultClient serves the package-level openers cmd/kallad registers, so
// that every job shares one S3 client and its connection pool.
var defaultClient = New(Config{})

// OpenSource opens an s3:// source URI with the default Client, which is
// configured from the environment. It only parses the URI.
func OpenSource(ctx context.Context, uri string) (kalla.Source, error) {
	return defaultClient.OpenSource(ctx, uri)
}

// OpenOutput opens an s3:// output_path with the default Client. It only
// parses the path.
func OpenOutput(ctx context.Context, path string) (kalla.Output, error) {
	return defaultClient.OpenOutput(ctx, path)
}

// session returns the S3 client, building it on first use, and checks that
// credentials resolve, so that missing ones are reported against what was
// being read instead of as a signing failure deep in the SDK.
func (c *Client) session(ctx context.Context, what string) (*s3.Client, error) {
	api, creds, err := c.build(ctx)
	if err != nil {
		return nil, fmt.Errorf("configure S3 client for %s: %w", what, c.scrub(err))
	}
	if creds == nil || aws.IsCredentialsProvider(creds, aws.AnonymousCredentials{}) {
		return api, nil
	}
	v, err := creds.Retrieve(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.scrub(fmt.Errorf("%w: none found for %s; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "+
			"(and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE naming a profile of the shared "+
			"credentials file (%s)", ErrCredentials, what, err.Error()))
	}
	c.remember(v.AccessKeyID, v.SecretAccessKey, v.SessionToken)
	return api, nil
}

func (c *Client) build(ctx context.Context) (*s3.Client, aws.CredentialsProvider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return c.api, c.creds, nil
	}
	var cfg aws.Config
	if c.cfg.AWS != nil {
		cfg = c.cfg.AWS.Copy()
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return nil, nil, fmt.Errorf("load AWS configuration: %w", err)
		}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if _, cached := cfg.Credentials.(*aws.CredentialsCache); cfg.Credentials != nil && !cached &&
		!aws.IsCredentialsProvider(cfg.Credentials, aws.AnonymousCredentials{}) {
		// One cache for the SDK and for session's check, so that
		// credentials are fetched once, not once per fetch.
		cfg.Credentials = aws.NewCredentialsCache(cfg.Credentials)
	}
	forced, _ := strconv.ParseBool(os.Getenv("KALLA_S3_PATH_STYLE"))
	forced = forced || c.cfg.PathStyle
	conns := 2 * c.cfg.Concurrency
	c.api = s3.NewFromConfig(cfg, func(o *s3.Options) {
		// The SDK's default logger writes to stderr (LoadDefaultConfig's
		// "Response has no supported checksum" on GETs, for example):
		// send its lines to ours.
		o.Logger = sdkLogger{c}
		// o.BaseEndpoint already holds AWS_ENDPOINT_URL(_S3) here.
		if forced || (o.BaseEndpoint != nil && localEndpoint(*o.BaseEndpoint)) {
			o.UsePathStyle = true
		}
		// The SDK keeps 10 idle connections per host; parallel ranges
		// need more, or every batch of GETs pays a new TCP (and TLS)
		// handshake.
		if b, ok := o.HTTPClient.(*awshttp.BuildableClient); ok || o.HTTPClient == nil {
			if b == nil {
				b = awshttp.NewBuildableClient()
			}
			o.HTTPClient = b.WithTransportOptions(func(tr *http.Transport) {
				tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, conns)
			})
		}
	})
	c.creds = cfg.Credentials
	return c.api, c.creds, nil
}

// sdkLogger sends the SDK's log lines to the client's logger, scrubbed, at
// debug level (warnings at warn level).
type sdkLogger struct{ c *Client }

func (l sdkLogger) Logf(class logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if class == logging.Warn {
		level = slog.LevelWarn
	}
	l.c.cfg.Logger.Log(context.Background(), level, "aws sdk: "+l.c.redact(fmt.Sprintf(format, v...)))
}

// localEndpoint reports whether endpoint's host is an IP address or
// localhost, where virtual-hosted buckets (bucket.127.0.0.1) cannot resolve.
func localEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// remember records the secrets in use so that scrub can remove them.
func (c *Client) remember(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range values {
		if len(v) >= 4 {
			c.secrets[v] = true
		}
	}
}

// scrub returns err with any credential the client has used replaced by
// "[redacted]". The SDK does not put credentials in its errors, but a
// credential_process, a proxy or a store's error body could, and a secret
// in a log line is an incident.
func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := c.redact(msg)
	if clean == msg {
		return err
	}
	var v *kalla.ValidationError
	if errors.As(err, &v) {
		return &kalla.ValidationError{Field: v.Field, Message: c.redact(v.Message)}
	}
	return &scrubbed{msg: clean, cause: err}
}

// redact replaces the credentials in use, and those in the environment,
// in s.
func (c *Client) redact(s string) string {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if v := os.Getenv(name); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for secret := range c.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// scrubbed is an error whose text had secrets removed. It answers errors.Is
// for its cause (context.Canceled, ErrCredentials) but does not unwrap, so
// the original text cannot be printed by accident.
type scrubbed struct {
	msg   string
	cause error
}

func (e *scrubbed) Error() string        { return e.msg }
func (e *scrubbed) Is(target error) bool { return errors.Is(e.cause, target) }
