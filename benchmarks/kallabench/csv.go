package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/internal/childproc"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// csvOptions are the flags of the CSV variants.
type csvOptions struct {
	skip   bool
	skipS3 bool
}

func (o *csvOptions) flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.skip, "skip-csv", false, "skip the CSV variants (Kalla from CSV, raw DuckDB read_csv, Kalla from S3 CSV)")
	fs.BoolVar(&o.skipS3, "skip-s3", false, "skip Kalla from S3 CSV, which needs a versitygw binary ($"+kallatest.VersitygwEnv+", or the one the S3 tests build)")
}

// The CSV variants' names; each is compared with its reference (the
// ratio column): Kalla from CSV with DuckDB's own CSV reader, Kalla from
// S3 CSV with Kalla reading the same files locally.
const (
	kallaCSVVariant = "kalla-csv"
	rawCSVVariant   = "raw-duckdb-csv"
	kallaS3Variant  = "kalla-s3-csv"
)

// csvVariants returns the CSV variants on the generated data written as
// headered CSV files, and a stop function for what they started (the S3
// server). Failing to set one up skips it with the reason.
func (c *benchCommand) csvVariants(ctx context.Context, o *benchOptions, data *benchdata.Set, child *benchChild) ([]*benchVariant, func(), error) {
	variants := []*benchVariant{
		{Name: kallaCSVVariant, Reference: rawCSVVariant,
			Note: "the Runner as kallad run wires it, the same data as headered CSV files, end to end, 3 Parquet outputs"},
		{Name: rawCSVVariant,
			Note: "the raw DuckDB SQL on the CSV files through read_csv (amount typed DECIMAL(18,2), the rest sniffed)"},
		{Name: kallaS3Variant, Reference: kallaCSVVariant,
			Note: "kalla-csv with the CSV files as objects in a local versitygw (127.0.0.1, posix backend), fetched by the S3 source"},
	}
	stop := func() {}
	if o.csv.skip {
		for _, v := range variants {
			v.Skipped = "--skip-csv"
		}
		return variants, stop, nil
	}
	invoices, payments, err := data.HeaderCSV(ctx)
	if err != nil {
		return nil, stop, err
	}
	job, err := child.writeJob(kallaCSVVariant, invoices, payments)
	if err != nil {
		return nil, stop, err
	}
	variants[0].run = func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, job) }
	variants[1].run = func(ctx context.Context) (benchRun, error) {
		return child.runRawFiles(ctx, rawCSVVariant, "csv", invoices, payments)
	}
	if o.csv.skipS3 {
		variants[2].Skipped = "--skip-s3"
		return variants, stop, nil
	}
	srv, err := startBenchS3(ctx, filepath.Join(child.dir, "s3"))
	if err != nil {
		variants[2].Skipped = err.Error()
		c.logf("%s skipped: %v", kallaS3Variant, err)
		return variants, stop, nil
	}
	stop = srv.stop
	start := time.Now()
	for _, f := range []string{invoices, payments} {
		if err := srv.put(ctx, filepath.Base(f), f); err != nil {
			stop()
			return nil, func() {}, err
		}
	}
	c.logf("uploaded the CSV files to versitygw in %.1fs", time.Since(start).Seconds())
	s3Job, err := child.writeJob(kallaS3Variant, srv.uri(filepath.Base(invoices)), srv.uri(filepath.Base(payments)))
	if err != nil {
		stop()
		return nil, func() {}, err
	}
	// The child reads S3 the way kallad does, configured by the
	// environment it inherits.
	for k, v := range srv.env() {
		os.Setenv(k, v)
	}
	variants[2].run = func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, s3Job) }
	return variants, stop, nil
}

// rawReader is the table function raw DuckDB reads path of format with.
// A CSV file is read with DuckDB's sniffer for every column but the
// amount, which it would read as DOUBLE.
func rawReader(format, path string) string {
	if format == "csv" {
		return "read_csv(" + benchdata.Quote(path) + ", header = true, types = {'amount': 'DECIMAL(18,2)'})"
	}
	return "read_parquet(" + benchdata.Quote(path) + ")"
}

// summarizeReferences sets each variant's ratio to its reference's best.
func (r *benchReport) summarizeReferences() {
	best := map[string]float64{}
	for _, v := range r.Variants {
		best[v.Name] = v.Best
	}
	for _, v := range r.Variants {
		if ref := best[v.Reference]; ref > 0 && v.Best > 0 {
			v.VsRef = v.Best / ref
		}
	}
}

// referenceRatio is a variant's cell of the ratio column.
func (v *benchVariant) referenceRatio() string {
	if v.VsRef == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx %s", v.VsRef, v.Reference)
}

// benchS3 is a versitygw serving one bucket on a 127.0.0.1 port, its root
// a folder of the work folder.
type benchS3 struct {
	endpoint, access, secret string
	api                      *awss3.Client
	stop                     func()
}

const benchBucket = "kallabench"

// startBenchS3 starts versitygw (single account) with its data in root and
// creates the bucket.
func startBenchS3(ctx context.Context, root string) (*benchS3, error) {
	bin := os.Getenv(kallatest.VersitygwEnv)
	if bin == "" {
		dir, err := kallatest.VersitygwDir()
		if err != nil {
			return nil, err
		}
		bin = filepath.Join(dir, "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no versitygw at %s: set %s, or run the S3 tests once (KALLA_TEST_S3=versitygw) to build it", bin, kallatest.VersitygwEnv)
	}
	os.RemoveAll(root) // objects of an earlier run
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	// A free port: taken, noted, and given back for versitygw to listen on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &benchS3{endpoint: "http://" + addr, access: "kallabench", secret: "kallabench-secret"}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	// The keys go through the environment, not argv, which ps shows.
	cmd.Env = []string{"ROOT_ACCESS_KEY=" + s.access, "ROOT_SECRET_KEY=" + s.secret, "HOME=" + root}
	var waitErr error
	exited, err := childproc.Start(cmd, syscall.SIGKILL, &waitErr)
	if err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s.stop = func() { childproc.Stop(cmd, exited, syscall.SIGTERM, 10*time.Second) }
	s.api = awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
	})
	// Ready when it answers HTTP (403 to an unsigned GET).
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(s.endpoint)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("versitygw exited before answering: %v", waitErr)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("versitygw did not answer within 30s")
		}
	}
	if _, err := s.api.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(benchBucket)}); err != nil {
		s.stop()
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	return s, nil
}

// put uploads the file path as key.
func (s *benchS3) put(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := s.api.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(benchBucket), Key: aws.String(key), Body: f}); err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	return nil
}

func (s *benchS3) uri(key string) string { return "s3://" + benchBucket + "/" + key }

// env is the AWS environment that points Kalla's S3 source at the server.
func (s *benchS3) env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":      s.endpoint,
		"AWS_REGION":            "us-east-1",
		"AWS_ACCESS_KEY_ID":     s.access,
		"AWS_SECRET_ACCESS_KEY": s.secret,
	}
}
