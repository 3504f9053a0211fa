package duckdb_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// A dry run of a waterfall reports the counts, per rule too, that the real
// run writes, and writes nothing; progress names each rule in order.
func TestRulesDryRunCountsWithoutWriting(t *testing.T) {
	t.Parallel()
	invoices, payments := ledger(rand.New(rand.NewPCG(5, 1)), 300)
	b := setup(t, duckdb.Config{})
	job := func(out string) *kalla.Job {
		j := b.job("", b.write(t, "inv.csv", invoices), b.write(t, "pay.csv", payments), []string{"invoice_id"}, []string{"payment_id"})
		j.OutputPath = b.dir + "/" + out
		j.Rules = []kalla.Rule{
			{Name: "exact_ref", MatchSQL: exactRefSQL},
			{Name: "near_amount", MatchSQL: nearAmountSQL, Exclusive: &kalla.Exclusive{OrderBy: []string{"diff_cents"}, Ties: kalla.TiesLeaveUnmatched}},
			{Name: "same_payer", MatchSQL: samePayerSQL, Exclusive: &kalla.Exclusive{Sides: []string{"right_src"}, OrderBy: []string{"day_gap"}}},
		}
		return j
	}
	var mu sync.Mutex
	var rules []string
	dry, err := b.runner.DryRun(context.Background(), job("dry"), func(p kalla.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Rule != "" && (len(rules) == 0 || rules[len(rules)-1] != p.Rule) {
			rules = append(rules, p.Rule)
		}
	})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, err := os.Stat(b.dir + "/dry"); !os.IsNotExist(err) {
		t.Errorf("a dry run made its output folder (%v)", err)
	}
	if !dry.DryRun || dry.OutputPaths != (kalla.OutputPaths{}) {
		t.Errorf("dry run result: dry_run %v, output paths %+v", dry.DryRun, dry.OutputPaths)
	}
	mu.Lock()
	if !slices.Equal(rules, []string{"exact_ref", "near_amount", "same_payer"}) {
		t.Errorf("progress named rules %q", rules)
	}
	mu.Unlock()

	ran := b.run(t, job("real"))
	got, want := kallatest.Timeless(*dry), kallatest.Timeless(*ran)
	got.RunID, want.RunID, got.DryRun = "", "", false
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dry run %+v\nreal run %+v", got, want)
	}
	if len(want.Rules) != 3 || want.Rules[1].Ties == 0 || want.Rules[2].Matched == 0 {
		t.Errorf("the ledger does not exercise the rules: %+v", want.Rules)
	}
}

// An exclusive rule with no candidate (leave_unmatched too) keeps nothing
// and leaves every row to the next rule.
func TestExclusiveRuleWithoutCandidates(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	j := b.job("", b.write(t, "inv.csv", "invoice_id,ref\n1,A\n2,B\n"), b.write(t, "pay.csv", "payment_id,ref\n7,A\n8,C\n"),
		[]string{"invoice_id"}, []string{"payment_id"})
	none := "SELECT l.invoice_id, r.payment_id, 1 AS score FROM left_src l JOIN right_src r ON r.ref = l.ref || 'x'"
	j.Rules = []kalla.Rule{
		{Name: "none_both", MatchSQL: none, Exclusive: &kalla.Exclusive{OrderBy: []string{"score"}, Ties: kalla.TiesLeaveUnmatched}},
		{Name: "none_left", MatchSQL: none, Exclusive: &kalla.Exclusive{Sides: []string{"left_src"}}},
		{Name: "exact", MatchSQL: "SELECT l.invoice_id, r.payment_id FROM left_src l JOIN right_src r ON r.ref = l.ref", Exclusive: &kalla.Exclusive{}},
	}
	res := b.run(t, j)
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "_kalla_rule, invoice_id, payment_id"), []string{"exact|1|7"})
	for i, want := range []kalla.RuleCount{
		{Name: "none_both", LeftIn: 2, RightIn: 2},
		{Name: "none_left", LeftIn: 2, RightIn: 2},
		{Name: "exact", LeftIn: 2, RightIn: 2, Candidates: 1, Matched: 1},
	} {
		got := res.Rules[i]
		got.ElapsedMS = 0
		if got != want {
			t.Errorf("rule %d: %+v, want %+v", i, got, want)
		}
	}
}
