package s3_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/s3"
)

func TestFetchObjectLargerThanRange(t *testing.T) {
	t.Parallel()
	const rangeSize, concurrency = 4096, 4
	c, b := setup(t, s3.Config{RangeSize: rangeSize, Concurrency: concurrency})
	data := csvRows(3000)
	b.srv.Put(t, "data", "in/invoices.csv", data)

	// Hold every GET after the first until Concurrency of them are in
	// flight at once: the fetch completes only if ranges run in parallel.
	var inFlight atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	b.srv.OnRequest(func(r *http.Request) {
		if r.Method != http.MethodGet || strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
			return
		}
		if inFlight.Add(1) == concurrency {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
	})

	start := time.Now()
	fs := mustFetch(t, c, "s3://data/in/invoices.csv")
	if time.Since(start) > 9*time.Second {
		t.Fatalf("ranges were not fetched %d at a time", concurrency)
	}
	if fs.Format != kalla.FormatCSV || filepath.Base(fs.Pattern) != "invoices.csv" {
		t.Fatalf("got %+v, want a local invoices.csv", fs)
	}
	got, err := os.ReadFile(fs.Pattern)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("local copy differs: %d bytes, want %d", len(got), len(data))
	}
	// One GET per range, no HEAD, and the ranges tile the object.
	wantRanges := (len(data) + rangeSize - 1) / rangeSize
	var ranges []string
	for _, r := range b.srv.Requests() {
		if r.Op() != "GetObject" {
			t.Errorf("unexpected request %s", r.Op())
		}
		ranges = append(ranges, r.Range)
	}
	if len(ranges) != wantRanges || wantRanges < 10 {
		t.Fatalf("%d GETs, want %d (one per range)", len(ranges), wantRanges)
	}
	for i := range wantRanges {
		want := fmt.Sprintf("bytes=%d-%d", i*rangeSize, min(i*rangeSize+rangeSize, len(data))-1)
		if !slices.Contains(ranges, want) {
			t.Errorf("no GET for %s", want)
		}
	}
}

// TestFetchMemoryBounded checks that an object is streamed to disk, not
// held in memory: fetching 64 MiB allocates a small fraction of that (the
// copy buffers, and per-request overhead of client and server alike). Not
// parallel, so that no other test's allocations are counted.
func TestFetchMemoryBounded(t *testing.T) {
	const size = 64 << 20
	c, b := setup(t, s3.Config{RangeSize: 4 << 20, Concurrency: 8})
	b.srv.Put(t, "data", "big.csv", bytes.Repeat([]byte("0123456789abcde\n"), size/16))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fs := mustFetch(t, c, "s3://data/big.csv")
	runtime.ReadMemStats(&after)
	if info, err := os.Stat(fs.Pattern); err != nil || info.Size() != size {
		t.Fatalf("local copy: %v, %v", info, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("fetching %d MiB allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
	if alloc > size/8 {
		t.Fatalf("fetching %d MiB allocated %.1f MiB: the object is being buffered", size>>20, float64(alloc)/(1<<20))
	}
}

// TestRangeBoundaries cuts a CSV whose quoted fields hold newlines, commas
// and quotes at every byte position (range sizes 1 to its length) and checks
// that the local copy, and so every row, is identical each time.
func TestRangeBoundaries(t *testing.T) {
	t.Parallel()
	_, b := setup(t, s3.Config{})
	data := csvRows(6)
	b.srv.Put(t, "data", "tiny.csv", data)
	wantRows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(wantRows) != 7 || !strings.Contains(wantRows[1][1], "\n") {
		t.Fatalf("test data should have quoted newlines: %q", wantRows)
	}
	for size := 1; size <= len(data); size++ {
		aws := b.srv.Config()
		c := s3.New(s3.Config{AWS: &aws, RangeSize: int64(size), Concurrency: 8, Logger: slog.New(slog.DiscardHandler)})
		fs := mustFetch(t, c, "s3://data/tiny.csv")
		got, err := os.ReadFile(fs.Pattern)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("range size %d: local copy differs:\n%q\nwant\n%q", size, got, data)
		}
		rows, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
		if err != nil || !reflect.DeepEqual(rows, wantRows) {
			t.Fatalf("range size %d: rows %q (%v), want %q", size, rows, err, wantRows)
		}
	}
}

func TestFetchPrefixPages(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{PageSize: 10, RangeSize: 100, Concurrency: 3})
	want := map[string]bool{}
	put := func(key string, data []byte, included bool) {
		b.srv.Put(t, "data", key, data)
		if included {
			want[string(data)] = true
		}
	}
	for i := range 25 {
		put(fmt.Sprintf("batch/part-%02d.csv", i), csvRows(i+1), true)
	}
	put("batch/nested/deeper.csv", csvRows(30), true)
	put("batch/_SUCCESS", nil, false)
	put("batch/.part-00.csv.crc", []byte("crc"), false)
	put("batch/_temporary.csv", []byte("a\n1\n"), false)
	put("batch/folder/", nil, false)
	put("batchx/other.csv", []byte("other\n"), false)

	fs := mustFetch(t, c, "s3://data/batch/")
	if fs.Format != kalla.FormatCSV || filepath.Base(fs.Pattern) != "*" {
		t.Fatalf("got %+v, want a glob of CSV files", fs)
	}
	files, err := filepath.Glob(fs.Pattern)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got[string(data)] = true
	}
	if len(files) != 26 || !reflect.DeepEqual(got, want) {
		t.Fatalf("fetched %d files, want 26 with the objects' contents", len(files))
	}
	var pages, continued int
	for _, r := range b.srv.Requests() {
		if r.Op() == "ListObjectsV2" {
			pages++
			if r.Query.Get("max-keys") != "10" || r.Query.Get("prefix") != "batch/" {
				t.Errorf("listing asked for %v", r.Query)
			}
			if r.Query.Has("continuation-token") {
				continued++
			}
		}
	}
	if pages < 3 || continued != pages-1 {
		t.Fatalf("%d listing pages (%d continued), want at least 3 pages of 10 keys", pages, continued)
	}
}

func TestFetchGlob(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{PageSize: 4})
	for i := range 15 {
		b.srv.Put(t, "data", fmt.Sprintf("batch/part-%02d.csv", i), csvRows(1))
		b.srv.Put(t, "data", fmt.Sprintf("batch/part-%02d.parquet", i), []byte("PAR1"))
	}
	fs := mustFetch(t, c, "s3://data/batch/part-0*.csv")
	files, _ := filepath.Glob(fs.Pattern)
	if fs.Format != kalla.FormatCSV || len(files) != 10 {
		t.Fatalf("got %+v with %d files, want 10 CSV files", fs, len(files))
	}
	fs = mustFetch(t, c, "s3://data/batch/*.parquet")
	files, _ = filepath.Glob(fs.Pattern)
	if fs.Format != kalla.FormatParquet || len(files) != 15 {
		t.Fatalf("got %+v with %d files, want 15 Parquet files", fs, len(files))
	}
}

func TestFetchPrefixErrors(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	b.srv.Put(t, "data", "mixed/a.csv", []byte("a\n1\n"))
	b.srv.Put(t, "data", "mixed/b.parquet", []byte("PAR1"))
	b.srv.Put(t, "data", "junk/_SUCCESS", nil)

	_, err := fetch(context.Background(), t, c, "s3://data/mixed/")
	if !kalla.IsValidation(err) || !strings.Contains(err.Error(), "s3://data/mixed/a.csv") ||
		!strings.Contains(err.Error(), "s3://data/mixed/b.parquet") {
		t.Fatalf("mixed formats: got %v, want a uri error naming both objects", err)
	}
	_, err = fetch(context.Background(), t, c, "s3://data/junk/")
	if !kalla.IsValidation(err) || !strings.Contains(err.Error(), "no CSV or Parquet object under s3://data/junk/") {
		t.Fatalf("no data: got %v", err)
	}
}

func TestFetchCompressedCSV(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{RangeSize: 512})
	data := csvRows(200)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(data)
	w.Close()
	enc, _ := zstd.NewWriter(nil)
	objects := map[string][]byte{"in/x.csv.gz": gz.Bytes(), "in/x.csv.zst": enc.EncodeAll(data, nil)}
	enc.Close()
	for key, body := range objects {
		b.srv.Put(t, "data", key, body)
		fs := mustFetch(t, c, "s3://data/"+key)
		got, _ := os.ReadFile(fs.Pattern)
		if fs.Format != kalla.FormatCSV || filepath.Base(fs.Pattern) != filepath.Base(key) || !bytes.Equal(got, body) {
			t.Fatalf("%s: got %+v (%d bytes), want the compressed bytes under the same extension", key, fs, len(got))
		}
	}
}

func TestFetchEmptyObject(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	b.srv.Put(t, "data", "empty.csv", nil)
	fs := mustFetch(t, c, "s3://data/empty.csv")
	if info, err := os.Stat(fs.Pattern); err != nil || info.Size() != 0 {
		t.Fatalf("got %v, %v; want an empty local file", info, err)
	}
}

func TestFetchCancel(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{RangeSize: 1024, Concurrency: 4})
	b.srv.Put(t, "data", "big.csv", csvRows(2000))
	ctx, cancel := context.WithCancel(context.Background())
	var stalled atomic.Int32
	b.srv.OnRequest(func(r *http.Request) {
		if r.Method == http.MethodGet && !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
			if stalled.Add(1) == 2 {
				cancel()
			}
			<-r.Context().Done() // until the client hangs up
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := fetch(ctx, t, c, "s3://data/big.csv")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch did not return after its context was cancelled")
	}
}
