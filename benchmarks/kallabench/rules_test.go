package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

// TestRulesBenchmark runs the rules variants at a small size and checks
// that Kalla and the hand-written DuckDB script agree on every per-rule
// count and, row for row, on the three files they write; that every rule
// matched something (so the comparison compares something); and that the
// join-only variant found the same candidates.
func TestRulesBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DuckDB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	c := &benchCommand{Stdout: &stdout, Stderr: &stderr}
	err := c.Run(ctx, []string{"--rows", "20000", "--partitions", "2", "--skip-postgres", "--dir", dir, "--json"})
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
	runs := map[string]benchRun{}
	for _, v := range rep.Variants {
		if v.Skipped != "" {
			continue
		}
		if v.Error != "" || len(v.Runs) != 1 {
			t.Fatalf("%s: error %q, %d runs", v.Name, v.Error, len(v.Runs))
		}
		runs[v.Name] = v.Runs[0]
	}
	kr, raw, join := runs[kallaRulesVariant], runs[rawRulesVariant], runs[joinRulesVariant]
	if len(kr.Rules) != len(benchRules) {
		t.Fatalf("kalla-rules reported %d rules, want %d", len(kr.Rules), len(benchRules))
	}
	for i, rc := range kr.Rules {
		if rc.Name != benchRules[i].Name || rc.Matched == 0 {
			t.Errorf("rule %d: %+v: want %s matching some rows", i, rc, benchRules[i].Name)
		}
	}
	if d := compareRules(kr, raw); len(d) > 0 {
		t.Errorf("kalla-rules against raw-rules: %v", d)
	}
	if kr.Rules[2].Matched >= kr.Rules[2].Candidates {
		t.Errorf("split_payments kept %d of %d candidates: the exclusive side should drop some", kr.Rules[2].Matched, kr.Rules[2].Candidates)
	}
	if d := compareJoinOnly(join, kr); len(d) > 0 {
		t.Errorf("kalla-rules-join against kalla-rules: %v", d)
	}
	if kr.Counts.Matched == join.Counts.Matched {
		t.Errorf("kalla-rules-join matched %d, as many as the exclusive rules", join.Counts.Matched)
	}
	if kr.Counts == rep.Expected {
		t.Errorf("kalla-rules counts %s equal the plain job's: the rules did not run", kr.Counts)
	}

	// The files, row for row.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile} {
		a := benchdata.Quote(filepath.Join(dir, "out", kallaRulesVariant, f))
		b := benchdata.Quote(filepath.Join(dir, "out", rawRulesVariant, f))
		var diff, n int64
		q := "SELECT (SELECT count(*) FROM (FROM read_parquet(" + a + ") EXCEPT ALL FROM read_parquet(" + b + "))) + " +
			"(SELECT count(*) FROM (FROM read_parquet(" + b + ") EXCEPT ALL FROM read_parquet(" + a + "))), (SELECT count(*) FROM read_parquet(" + a + "))"
		if err := db.QueryRowContext(ctx, q).Scan(&diff, &n); err != nil {
			t.Fatalf("compare %s: %v", f, err)
		}
		if diff != 0 || n == 0 {
			t.Errorf("%s: %d rows differ between Kalla and raw DuckDB (Kalla wrote %d)", f, diff, n)
		}
	}
}

// TestCompareRules checks that a per-rule difference is reported, not only
// a difference of the totals.
func TestCompareRules(t *testing.T) {
	base := benchRun{Counts: benchdata.Counts{Matched: 3}, Rules: []kalla.RuleCount{{Name: "a", Candidates: 4, Matched: 2, ElapsedMS: 5}, {Name: "b", Matched: 1}}}
	same := base
	same.Rules = []kalla.RuleCount{{Name: "a", Candidates: 4, Matched: 2, ElapsedMS: 9}, {Name: "b", Matched: 1}}
	if d := compareRules(same, base); len(d) != 0 {
		t.Errorf("equal counts, other times: %v", d)
	}
	moved := base
	moved.Rules = []kalla.RuleCount{{Name: "a", Candidates: 4, Matched: 1}, {Name: "b", Matched: 2}}
	if d := compareRules(moved, base); len(d) != 2 || !strings.Contains(d[0], "rule a") {
		t.Errorf("a match moved from rule a to b: %v", d)
	}
}
