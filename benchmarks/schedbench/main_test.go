package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

func TestMain(m *testing.M) { kallatest.Main(m) }

// TestBenchmarkFlow runs the whole benchmark at a small size against a
// throwaway Postgres: seeding, a real `kallad scheduler` child, one job per
// pattern over HTTP with a real callback receiver, and Postgres running the
// same match_sql. Kalla's counts must equal Postgres', and every pattern
// must leave rows unmatched on both sides, so that the data exercise the
// rules rather than match everything.
func TestBenchmarkFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kallad and runs a scheduler")
	}
	db := kallatest.Postgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := &options{rows: 2000, pgURL: db.URL, patterns: patterns, timeout: time.Minute,
		schedulerArgs: []string{"--partitions", "2"}}
	rep, err := run(ctx, o, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printTable(&out, rep)
	t.Logf("\n%s", out.String())
	if len(rep.Patterns) != len(patterns) {
		t.Fatalf("%d patterns reported, want %d", len(rep.Patterns), len(patterns))
	}
	for _, p := range rep.Patterns {
		if p.Status != "ok" || p.Kalla == nil || p.Postgres == nil {
			t.Errorf("%s: status %s: %s", p.Pattern, p.Status, p.Error)
			continue
		}
		k, pg := p.Kalla.Counts, p.Postgres.Counts
		if k != pg {
			t.Errorf("%s: kalla counts %+v, postgres %+v", p.Pattern, k, pg)
		}
		if k.Left != p.Invoices || k.Right != p.Payments || k.Left != 2000 {
			t.Errorf("%s: kalla read %d and %d rows; seeded %d invoices and %d payments", p.Pattern, k.Left, k.Right, p.Invoices, p.Payments)
		}
		if k.Matched == 0 || k.UnmatchedLeft == 0 || k.UnmatchedRight == 0 {
			t.Errorf("%s: counts %+v: want matches and unmatched rows on both sides", p.Pattern, k)
		}
		if k.UnmatchedLeft*5 > k.Left || k.UnmatchedRight*5 > k.Right {
			t.Errorf("%s: counts %+v: over a fifth of a side unmatched; the generator or the rule is off", p.Pattern, k)
		}
		if p.Kalla.Finals != 1 || p.Kalla.Progress == 0 {
			t.Errorf("%s: %d final and %d progress callbacks, want 1 and some", p.Pattern, p.Kalla.Finals, p.Kalla.Progress)
		}
	}
	if !strings.Contains(out.String(), "postgres") {
		t.Errorf("table lacks the postgres lines:\n%s", out.String())
	}
}

// TestPatternsAreDeterministic checks that the generators give the same
// rows for the same seed: the two tables of a pattern are written by two
// runs of one generator, each keeping one side.
func TestPatternsAreDeterministic(t *testing.T) {
	for i, p := range patterns {
		gen := func(side int) string {
			var b bytes.Buffer
			w := newRowWriter(&b)
			rng := newRand(i)
			if side == 0 {
				p.generate(rng, 500, w, nil)
			} else {
				p.generate(rng, 500, nil, w)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}
		for side := 0; side < 2; side++ {
			a, b := gen(side), gen(side)
			if a != b || a == "" {
				t.Errorf("%s side %d: two runs differ or are empty", p.name, side)
			}
		}
		if n := strings.Count(gen(0), "\n"); n != 500 {
			t.Errorf("%s: %d invoices, want 500", p.name, n)
		}
	}
}
