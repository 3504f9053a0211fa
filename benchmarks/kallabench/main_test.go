package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// TestMain runs the hidden child variants when the test binary is started
// as one (the benchmark re-executes itself: here, the test binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == kallaChildCommand || os.Args[1] == rawChildCommand || os.Args[1] == rawRulesChildCommand) {
		c := &benchCommand{Stdout: os.Stdout, Stderr: os.Stderr}
		if err := c.Run(context.Background(), os.Args[1:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	kallatest.Main(m)
}

// TestBenchmark runs every variant at a small size against a throwaway
// Postgres (and S3 server), each in its own child process, and checks that
// the variants that match agree with the generator's design and that
// Kalla's phases are the stages its Runner reported (the two Postgres tables
// staged at once, one phase), covering no more than the run's wall time;
// the COPY floor copies both tables and sets the Postgres variants' ratio
// to it. The carry-over variants check their own summary.json (carryover.go)
// and fail the run on a wrong carry_over or ageing.
func TestBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DuckDB and Postgres")
	}
	db := kallatest.Postgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := &benchCommand{Stdout: &stdout, Stderr: &stderr}
	err := c.Run(ctx, []string{"--rows", "2000", "--partitions", "2", "--postgres", db.URL, "--dir", t.TempDir(), "--json", "--skip-rules"})
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
		"kalla-postgres": {"stage left_src+right_src", "match+write", "other"},
		explainVariant:   {"stage left_src", "stage right_src", "match+write", "other"},
		"raw-duckdb":     {"join", "write matched", "anti-join left", "anti-join right", "other"},
		"postgres":       {"join", "anti-join left", "anti-join right"},
		copyFloorVariant: {"copy " + benchdata.InvoicesTable, "copy " + benchdata.PaymentsTable},
		pruneFloorVariant: {"copy needed " + benchdata.InvoicesTable, "fetch unmatched " + benchdata.InvoicesTable,
			"copy needed " + benchdata.PaymentsTable, "fetch unmatched " + benchdata.PaymentsTable},
		kallaCSVVariant: {"stage left_src", "stage right_src", "match+write", "other"},
		rawCSVVariant:   {"join", "write matched", "anti-join left", "anti-join right", "other"},
		kallaS3Variant:  {"stage left_src", "stage right_src", "match+write", "other"},
	}
	want[carryStartVariant], want[carryDay2Variant] = want["kalla-parquet"], want["kalla-parquet"]
	if len(rep.Variants) != len(want) {
		t.Fatalf("%d variants, want %d", len(rep.Variants), len(want))
	}
	var floor float64
	for _, v := range rep.Variants {
		if v.Name == copyFloorVariant {
			floor = v.Best
		}
	}
	if floor <= 0 {
		t.Fatalf("no COPY floor measured: %+v", rep.Variants)
	}
	for _, v := range rep.Variants {
		if v.Name == kallaS3Variant && strings.HasPrefix(v.Skipped, "no versitygw") {
			t.Logf("%s skipped: %s", v.Name, v.Skipped)
			continue
		}
		if v.Error != "" || v.Skipped != "" || len(v.Runs) != 1 {
			t.Errorf("%s: error %q, skipped %q, %d runs", v.Name, v.Error, v.Skipped, len(v.Runs))
			continue
		}
		r := v.Runs[0]
		if v.Name == copyFloorVariant {
			// Two parallel copies, no match: each copy within the run,
			// and the floor is its own unit.
			for _, p := range r.Phases {
				if p.Seconds <= 0 || p.Seconds > r.Seconds*1.001 {
					t.Errorf("%s: phase %s took %.3fs of a %.3fs run", v.Name, p.Name, p.Seconds, r.Seconds)
				}
			}
			if v.VsFloor != 1 {
				t.Errorf("%s: %.2fx the COPY floor, want 1", v.Name, v.VsFloor)
			}
			continue
		}
		if v.Name == pruneFloorVariant {
			// Per table the needed columns, then the unmatched rows: the
			// two steps of one table within the run, the tables at once.
			for i := 0; i+1 < len(r.Phases); i += 2 {
				if s := r.Phases[i].Seconds + r.Phases[i+1].Seconds; r.Phases[i].Seconds <= 0 || r.Phases[i+1].Seconds <= 0 || s > r.Seconds*1.001 {
					t.Errorf("%s: %s and %s took %.3fs of a %.3fs run", v.Name, r.Phases[i].Name, r.Phases[i+1].Name, s, r.Seconds)
				}
			}
			if names := phaseNames(r); !slices.Equal(names, want[v.Name]) {
				t.Errorf("%s: phases %q, want %q", v.Name, names, want[v.Name])
			}
			if want := v.Best / floor; v.VsFloor != want {
				t.Errorf("%s: %.2fx the COPY floor, want %.2fx", v.Name, v.VsFloor, want)
			}
			continue
		}
		if want := v.Best / floor; v.Name == "kalla-postgres" && v.VsFloor != want {
			t.Errorf("%s: %.2fx the COPY floor, want %.2fx", v.Name, v.VsFloor, want)
		}
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
		if (v.Reference != "") != (v.VsRef > 0) {
			t.Errorf("%s: ratio %.2f to reference %q", v.Name, v.VsRef, v.Reference)
		}
	}
}

// phaseNames lists the names of r's phases in order.
func phaseNames(r benchRun) []string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	return names
}
