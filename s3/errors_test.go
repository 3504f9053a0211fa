package s3_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/s3"
)

func TestOpenMalformed(t *testing.T) {
	t.Parallel()
	// No server: opening must not need one.
	c := s3.New(s3.Config{})
	ctx := context.Background()
	for _, tc := range []struct{ uri, want string }{
		{"s3://", "names no bucket"},
		{"s3:///key.csv", "names no bucket"},
		{"s3://bucket", "names a bucket but no object"},
		{"s3://bucket/key", "cannot tell the format"},
		{"s3://bucket/key.json", "cannot tell the format"},
		{"s3://bucket/key.parquet.gz", "cannot tell the format"},
		{"s3://Bad_Bucket!/key.csv", "not a valid bucket name"},
		{"s3://bucket/[a.csv", "malformed pattern"},
		{"s3://AKIAXXX:topsecret@bucket/key.csv", "credentials in an s3:// URI are not supported"},
	} {
		_, err := c.OpenSource(ctx, tc.uri)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "uri" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenSource(%q) = %v, want a uri error containing %q", tc.uri, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("OpenSource(%q) echoed the secret: %v", tc.uri, err)
		}
	}
	for _, uri := range []string{"s3://b12/k.csv", "s3://bucket/dir/", "s3://bucket/", "s3://bucket/a/*.parquet", "S3://bucket/k.csv.zst"} {
		if _, err := c.OpenSource(ctx, uri); err != nil {
			t.Errorf("OpenSource(%q): %v", uri, err)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"s3://", "names no bucket"},
		{"s3:///out", "names no bucket"},
		{"s3://bucket/out/*", "is a pattern"},
	} {
		_, err := c.OpenOutput(ctx, tc.path)
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "output_path" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenOutput(%q) = %v, want an output_path error containing %q", tc.path, err, tc.want)
		}
	}
}

// TestFetchErrors checks that every failure names the bucket and key, and
// that no credential reaches an error or a log line.
func TestFetchErrors(t *testing.T) {
	t.Parallel()
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "data")
	srv.CreateBucket(t, "locked")
	srv.Put(t, "locked", "k.csv", []byte("a\n1\n"))
	srv.Deny(t, "locked")
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	const token = "session-token-very-secret"
	good := srv.Config()
	withCreds := func(access, secret, token string) aws.Config {
		cfg := srv.Config()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(access, secret, token)
		return cfg
	}
	secrets := []string{srv.AccessKeyID, srv.SecretAccessKey, "AKIAWRONGWRONGWRONG", "wrong-secret-key-material", token}

	type fetchCase struct {
		name       string
		cfg        aws.Config
		uri        string
		validation bool
		want       string
	}
	cases := []fetchCase{
		{"missing bucket", good, "s3://nosuchbucket/k.csv", true, `bucket "nosuchbucket" does not exist (read s3://nosuchbucket/k.csv)`},
		{"missing bucket listing", good, "s3://nosuchbucket/dir/", true, `bucket "nosuchbucket" does not exist (list s3://nosuchbucket/dir/)`},
		{"missing key", good, "s3://data/nosuchkey.csv", true, "s3://data/nosuchkey.csv does not exist"},
		{"access denied", good, "s3://locked/k.csv", true, "access denied to s3://locked/k.csv"},
		{"access denied listing", good, "s3://locked/", true, "access denied to s3://locked/: the credentials in use may not list it"},
		{"unknown access key", withCreds("AKIAWRONGWRONGWRONG", "wrong-secret-key-material", ""), "s3://data/k.csv", false,
			"AWS credentials rejected (InvalidAccessKeyId) when trying to read s3://data/k.csv"},
	}
	if srv.VerifiesSignatures() {
		cases = append(cases,
			fetchCase{"wrong secret", withCreds(srv.AccessKeyID, "wrong-secret-key-material", ""), "s3://data/k.csv", false,
				"AWS credentials rejected (SignatureDoesNotMatch) when trying to read s3://data/k.csv"},
			fetchCase{"wrong secret listing", withCreds(srv.AccessKeyID, "wrong-secret-key-material", ""), "s3://data/dir/", false,
				"AWS credentials rejected (SignatureDoesNotMatch) when trying to list s3://data/dir/"},
			fetchCase{"bogus session token", withCreds(srv.AccessKeyID, srv.SecretAccessKey, token), "s3://data/k.csv", false,
				"AWS credentials rejected (InvalidToken) when trying to read s3://data/k.csv"},
		)
	} else {
		t.Logf("the %s server checks no signature: wrong secrets and session tokens are tested with %s=versitygw", srv.Kind, kallatest.S3Env)
	}
	for _, tc := range cases {
		c := s3.New(s3.Config{AWS: &tc.cfg, Logger: logger})
		_, err := fetch(context.Background(), t, c, tc.uri)
		if err == nil || kalla.IsValidation(err) != tc.validation || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error (validation %v) containing %q", tc.name, err, tc.validation, tc.want)
			continue
		}
		if !tc.validation && !errors.Is(err, s3.ErrCredentials) {
			t.Errorf("%s: %v does not wrap ErrCredentials", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error shows a secret: %v", tc.name, err)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs show a secret:\n%s", logs.String())
		}
	}
}

// TestEnvironment runs the production opener's configuration path: AWS_*
// variables, no explicit config. Not parallel: it sets the environment.
func TestEnvironment(t *testing.T) {
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "data")
	srv.Put(t, "data", "k.csv", []byte("a\n1\n"))

	t.Run("endpoint and keys", func(t *testing.T) {
		srv.Setenv(t)
		t.Setenv("AWS_REGION", "")
		os.Unsetenv("AWS_REGION") // us-east-1 by default
		mustFetch(t, s3.New(s3.Config{}), "s3://data/k.csv")
	})
	t.Run("service endpoint and profile", func(t *testing.T) {
		srv.Setenv(t)
		t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // overridden for S3
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
		creds := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
		os.WriteFile(creds, []byte("[kalla]\naws_access_key_id = "+srv.AccessKeyID+"\naws_secret_access_key = "+srv.SecretAccessKey+"\n"), 0o600)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		os.Unsetenv("AWS_ACCESS_KEY_ID")
		os.Unsetenv("AWS_SECRET_ACCESS_KEY")
		t.Setenv("AWS_PROFILE", "kalla")
		mustFetch(t, s3.New(s3.Config{}), "s3://data/k.csv")
	})
	t.Run("missing credentials", func(t *testing.T) {
		srv.Setenv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		os.Unsetenv("AWS_ACCESS_KEY_ID")
		os.Unsetenv("AWS_SECRET_ACCESS_KEY")
		srv.ResetRequests()
		_, err := fetch(context.Background(), t, s3.New(s3.Config{}), "s3://data/k.csv")
		if !errors.Is(err, s3.ErrCredentials) || !strings.Contains(err.Error(), "none found for s3://data/k.csv") {
			t.Fatalf("got %v, want ErrCredentials naming the object", err)
		}
		t.Log(err)
		if n := len(srv.Requests()); n != 0 {
			t.Errorf("%d requests sent without credentials", n)
		}
		out, _ := s3.New(s3.Config{}).OpenOutput(context.Background(), "s3://data/out")
		dir, _ := out.Prepare(context.Background())
		os.WriteFile(dir+"/summary.json", []byte("{}"), 0o644)
		defer out.Discard(dir)
		if err := out.Publish(context.Background(), dir); !errors.Is(err, s3.ErrCredentials) || !strings.Contains(err.Error(), "s3://data/out") {
			t.Fatalf("publish: got %v, want ErrCredentials naming the output", err)
		}
	})
	t.Run("path style forced", func(t *testing.T) {
		// A host name that is neither an IP nor localhost gets
		// virtual-hosted addressing (data.s3.kalla.test) unless forced.
		srv.Setenv(t)
		addr := strings.TrimPrefix(srv.Endpoint, "http://")
		_, port, _ := net.SplitHostPort(addr)
		t.Setenv("AWS_ENDPOINT_URL", "http://s3.kalla.test:"+port)
		for _, forced := range []bool{false, true} {
			if forced {
				t.Setenv("KALLA_S3_PATH_STYLE", "true")
			}
			cfg := srv.Config()
			cfg.BaseEndpoint = aws.String("http://s3.kalla.test:" + port)
			cfg.HTTPClient = &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
			}}
			srv.ResetRequests()
			_, err := fetch(context.Background(), t, s3.New(s3.Config{AWS: &cfg}), "s3://data/k.csv")
			host := srv.Requests()[0].Host
			u, _ := url.Parse("http://" + host)
			if forced && (err != nil || u.Hostname() != "s3.kalla.test") {
				t.Errorf("KALLA_S3_PATH_STYLE=true: %v (host %s), want a path-style success", err, host)
			}
			if !forced && u.Hostname() != "data.s3.kalla.test" {
				t.Errorf("without KALLA_S3_PATH_STYLE, host %s, want virtual-hosted data.s3.kalla.test", host)
			}
		}
	})
}
