package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain runs the hidden child variants when the test binary is started
// as one (the benchmark re-executes itself: here, the test binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == kallaChildCommand || os.Args[1] == rawChildCommand) {
		c := &benchCommand{Stdout: os.Stdout, Stderr: os.Stderr}
		if err := c.Run(context.Background(), os.Args[1:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	kallatest.Main(m)
}

// TestBenchmark runs every variant at a small size against a throwaway
// Postgres, each in its own child process, and checks that all four agree
// with the generator's design and that Kalla's phases are the stages its
// Runner reported, covering no more than the run's wall time.
func TestBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DuckDB and Postgres")
	}
	db := kallatest.Postgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := &benchCommand{Stdout: &stdout, Stderr: &stderr}
	err := c.Run(ctx, []string{"--rows", "2000", "--partitions", "2", "--postgres", db.URL, "--dir", t.TempDir(), "--json"})
	t.Logf("stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decode report: %v\n%s", err, stdout.String())
	}
	if len(rep.Mismatches) > 0 {
		t.Errorf("mismatches: %v", rep.Mismatches)
	}
	if rep.Invoices != 2000 || rep.Expected.Matched == 0 || rep.Expected.UnmatchedLeft == 0 || rep.Expected.UnmatchedRight == 0 {
		t.Errorf("report %+v: want 2000 invoices and matched and unmatched rows on both sides", rep)
	}
	want := map[string][]string{
		"kalla-parquet":  {"stage left_src", "stage right_src", "match+write", "other"},
		"kalla-postgres": {"stage left_src", "stage right_src", "match+write", "other"},
		explainVariant:   {"stage left_src", "stage right_src", "match+write", "other"},
		"raw-duckdb":     {"join", "write matched", "anti-join left", "anti-join right", "other"},
		"postgres":       {"join", "anti-join left", "anti-join right"},
	}
	if len(rep.Variants) != len(want) {
		t.Fatalf("%d variants, want %d", len(rep.Variants), len(want))
	}
	for _, v := range rep.Variants {
		if v.Error != "" || v.Skipped != "" || len(v.Runs) != 1 {
			t.Errorf("%s: error %q, skipped %q, %d runs", v.Name, v.Error, v.Skipped, len(v.Runs))
			continue
		}
		r := v.Runs[0]
		if r.Counts != rep.Expected {
			t.Errorf("%s: counts %s, expected %s", v.Name, r.Counts, rep.Expected)
		}
		var names []string
		sum := 0.0
		for _, p := range r.Phases {
			names = append(names, p.Name)
			sum += p.Seconds
		}
		if !slices.Equal(names, want[v.Name]) {
			t.Errorf("%s: phases %q, want %q", v.Name, names, want[v.Name])
		}
		if sum <= 0 || sum > r.Seconds*1.001 {
			t.Errorf("%s: phases sum to %.3fs of a %.3fs run", v.Name, sum, r.Seconds)
		}
	}
}
