package duckdb_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// TestExplainManyPairsRunsAsWritten: a rule whose key every row shares (a
// currency) joins rows² pairs on it, many times what the rule keeps.
// Explaining from them kept them all (16M pairs for 4,000 rows a side
// took 9 s where the rule as written took 0.28 s); past maxPairs the rule
// runs as written and the unmatched rows are joined again, with the same
// results.
func TestExplainManyPairsRunsAsWritten(t *testing.T) {
	// 400 rows a side: 160,000 pairs, more than 2 × 800 + 100,000.
	var inv, pay strings.Builder
	inv.WriteString("id,cur,amount\n")
	pay.WriteString("pid,cur,amount\n")
	for i := range 400 {
		fmt.Fprintf(&inv, "I%d,EUR,%d.00\n", i, 10*i)
		// Every third payment is 0.30 off its invoice (a match), the
		// others 3.00 off (outside the rule's 0.50).
		off := "3.00"
		if i%3 == 0 {
			off = "0.30"
		}
		fmt.Fprintf(&pay, "P%d,EUR,%s\n", i, decimalAdd(10*i, off))
	}
	mk := func(b *bundle) *kalla.Job {
		job := b.job("", b.write(t, "invoices.csv", inv.String()), b.write(t, "payments.csv", pay.String()), []string{"id"}, []string{"pid"})
		job.Explain = true
		job.Rules = []kalla.Rule{{Name: "cur", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.cur = i.cur AND tolerance_match(i.amount, p.amount, 0.50)"}}
		return job
	}
	got := runExplained(t, true, mk)
	sameExplained(t, got, runExplained(t, false, mk))
	// 134 of the 400 are a match; the others' nearest candidate is their
	// own invoice, 3.00 off.
	want := &kalla.ReasonCounts{Left: map[string]int64{"outside_rule": 266}, Right: map[string]int64{"outside_rule": 266}}
	if got.res.MatchedCount != 134 || !reflect.DeepEqual(got.res.Reasons, want) {
		t.Errorf("matched %d, reasons %+v; want 134 and %+v", got.res.MatchedCount, got.res.Reasons, want)
	}
	if slices.Contains(got.log.steps, "candidates") || !slices.Contains(got.log.steps, "heavy") {
		t.Errorf("steps %v: want the rule run as written and the unmatched rows joined again", got.log.steps)
	}
}

// decimalAdd is the text of the whole number n plus off ("0.30").
func decimalAdd(n int, off string) string {
	whole, frac, _ := strings.Cut(off, ".")
	var w int
	fmt.Sscan(whole, &w)
	return fmt.Sprintf("%d.%s", n+w, frac)
}
