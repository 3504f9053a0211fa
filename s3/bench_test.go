package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/s3"
)

// BenchmarkReconcileLocalVsS3 runs the same job from local files and from
// the S3 test server, in one run, so the two times compare on one machine:
//
//	go test ./s3 -run '^$' -bench ReconcileLocalVsS3 -benchtime 5x
//
// KALLA_BENCH_ROWS sets the invoices (default 1,000,000; payments are about
// 0.95 per invoice). The S3 time includes fetching both sources with ranged
// GETs and publishing the results; s3-fetch-s and s3-publish-s time those
// transfers alone.
func BenchmarkReconcileLocalVsS3(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KALLA_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	srv := kallatest.S3(b)
	srv.CreateBucket(b, "data")
	srv.CreateBucket(b, "results")
	aws := srv.Config()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c := s3.New(s3.Config{AWS: &aws, Logger: logger})
	runner := newRunner(b, c)

	local := b.TempDir()
	invoices, payments := reconcileData(rows)
	size := int64(len(invoices))
	write := func(name string, data []byte) {
		path := filepath.Join(local, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		srv.Put(b, "data", name, data)
	}
	write("invoices.csv", invoices)
	for i, p := range payments {
		write(fmt.Sprintf("payments/part-%d.csv", i), p)
		size += int64(len(p))
	}
	b.Logf("%d invoices, %.1f MiB of CSV", rows, float64(size)/(1<<20))

	// Local and S3 runs alternate, so that a noisy neighbour slows both.
	// The S3 transfers are also timed alone (fetching both sources,
	// publishing the local job's results), because on a shared machine
	// the engine's time varies by more than they take.
	var localTime, s3Time, fetchTime, publishTime time.Duration
	var matched [2]int64
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		localOut := filepath.Join(b.TempDir(), "out")
		start := time.Now()
		res, err := runner.Run(ctx, reconcileJob(filepath.Join(local, "invoices.csv"),
			filepath.Join(local, "payments/*.csv"), localOut), nil)
		if err != nil {
			b.Fatal(err)
		}
		localTime += time.Since(start)
		matched[0] = res.MatchedCount

		start = time.Now()
		res, err = runner.Run(ctx, reconcileJob("s3://data/invoices.csv", "s3://data/payments/",
			fmt.Sprintf("s3://results/run-%d", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		s3Time += time.Since(start)
		matched[1] = res.MatchedCount

		start = time.Now()
		for _, uri := range []string{"s3://data/invoices.csv", "s3://data/payments/"} {
			src, _ := c.OpenSource(ctx, uri)
			if _, err := src.(*s3.Source).Fetch(ctx, b.TempDir()); err != nil {
				b.Fatal(err)
			}
		}
		fetchTime += time.Since(start)
		out, _ := c.OpenOutput(ctx, "s3://results/publish-only")
		dir, _ := out.Prepare(ctx)
		for _, name := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.SummaryFile} {
			if err := copyFile(filepath.Join(dir, name), filepath.Join(localOut, name)); err != nil {
				b.Fatal(err)
			}
		}
		start = time.Now()
		if err := out.Publish(ctx, dir); err != nil {
			b.Fatal(err)
		}
		publishTime += time.Since(start)
	}
	if matched[0] != matched[1] {
		b.Fatalf("matched %d rows from local files, %d from S3", matched[0], matched[1])
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(localTime.Seconds()/n, "local-s/job")
	b.ReportMetric(s3Time.Seconds()/n, "s3-s/job")
	b.ReportMetric(fetchTime.Seconds()/n, "s3-fetch-s")
	b.ReportMetric(publishTime.Seconds()/n, "s3-publish-s")
	b.ReportMetric(float64(matched[1]), "matched")
}

// BenchmarkFetch measures the ranged download alone: one object of
// KALLA_BENCH_MB MiB (default 256) from the S3 test server into a local
// file, against copying a local file of the same size.
func BenchmarkFetch(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("KALLA_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	srv := kallatest.S3(b)
	srv.CreateBucket(b, "data")
	data := bytes.Repeat(csvRows(1000), 1+(mb<<20)/len(csvRows(1000)))[:mb<<20]
	srv.Put(b, "data", "big.csv", data)
	src := filepath.Join(b.TempDir(), "big.csv")
	os.WriteFile(src, data, 0o644)

	b.Run("local copy", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		dst := filepath.Join(b.TempDir(), "copy.csv")
		for b.Loop() {
			if err := copyFile(dst, src); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, conc := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("s3 concurrency %d", conc), func(b *testing.B) {
			aws := srv.Config()
			c := s3.New(s3.Config{AWS: &aws, Concurrency: conc, Logger: slog.New(slog.DiscardHandler)})
			b.SetBytes(int64(len(data)))
			dir := b.TempDir()
			for b.Loop() {
				os.RemoveAll(dir)
				os.MkdirAll(dir, 0o755)
				src, _ := c.OpenSource(context.Background(), "s3://data/big.csv")
				if _, err := src.(*s3.Source).Fetch(context.Background(), dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
