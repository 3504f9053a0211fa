package duckdb_test

import (
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A job with rules is partitioned on a key every rule joins on, and
// otherwise runs whole: never broadcast, not even one rule that may use a
// row twice, since every partition would offer the broadcast side's rows
// again (counted once per partition in left_in/right_in, and a later rule
// would see rows an earlier one took in another partition). Each plan gives
// the local result.
func TestSplitRulesNeverBroadcast(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	inv, pay := ducktest.WritePatternParquet(t, b.dir)
	const byRef = `SELECT i.invoice_id, p.payment_id, abs(i.amount - p.amount) AS diff FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id`
	const byRange = `SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.amount BETWEEN i.amount - 0.001 AND i.amount AND i.invoice_id % 7 = 0`
	cases := []struct {
		name  string
		rules []kalla.Rule
		mode  distributed.SplitMode
	}{
		{"one_rule_no_key", []kalla.Rule{{Name: "range", MatchSQL: byRange}}, distributed.SplitSingle},
		{"two_rules_no_shared_key", []kalla.Rule{{Name: "range", MatchSQL: byRange}, {Name: "ref", MatchSQL: byRef}}, distributed.SplitSingle},
		{"exclusive_no_key", []kalla.Rule{{Name: "range", MatchSQL: byRange, Exclusive: &kalla.Exclusive{}}}, distributed.SplitSingle},
		{"shared_key", []kalla.Rule{{Name: "ref", MatchSQL: byRef + " AND p.amount = i.amount"},
			{Name: "closest", MatchSQL: byRef, Exclusive: &kalla.Exclusive{OrderBy: []string{"diff"}}}}, distributed.SplitPartition},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			local := b.job("", inv, pay, []string{"invoice_id"}, []string{"payment_id"})
			local.Rules = c.rules
			local.OutputPath = filepath.Join(b.dir, c.name, "local")
			want := b.run(t, local)
			split := *local
			split.OutputPath = filepath.Join(b.dir, c.name, "split")
			plan, got := runSplit(t, b.runner, &split, 3, [2]bool{})
			if plan.Mode != c.mode {
				t.Errorf("mode %s (%s), want %s", plan.Mode, plan.Reason, c.mode)
			}
			if want.MatchedCount == 0 {
				t.Errorf("the rules match nothing")
			}
			for _, rc := range want.Rules {
				if rc.Matched == 0 {
					t.Errorf("rule %s matches nothing: %+v", rc.Name, rc)
				}
			}
			sameResults(t, want, got)
			t.Logf("%s: %s", plan.Mode, plan.Reason)
		})
	}
}
