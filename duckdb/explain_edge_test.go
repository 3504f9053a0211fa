package duckdb_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A rule keyed on two equalities (reference and currency) over payments
// whose primary key is composite: a row whose currency differs has no
// candidate, a NULL currency is a null key, and the nearest payment's key
// is the list [pid, seq].
func TestExplainTwoKeysCompositePrimaryKey(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", "id,ref,cur,amount\nI1,R1,EUR,100.00\nI2,R2,EUR,200.00\nI3,R3,USD,50.00\nI4,R4,,75.00\n")
	right := b.write(t, "payments.csv", "pid,seq,ref,cur,amount\nP1,1,R1,EUR,100.00\nP1,2,R2,EUR,201.00\nP2,1,R3,EUR,50.00\nP3,1,R4,,75.00\n")
	job := b.job("", left, right, []string{"id"}, []string{"pid", "seq"})
	job.Explain = true
	job.Rules = []kalla.Rule{{Name: "ref_cur", MatchSQL: `SELECT i.id, p.pid, p.seq FROM left_src i JOIN right_src p
ON p.ref = i.ref AND p.cur = i.cur AND tolerance_match(i.amount, p.amount, 0.50)`}}
	res := b.run(t, job)
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "*"), []string{"ref_cur|I1|P1|1"})
	cols := "* EXCLUDE (ref, cur, amount, _kalla_near_taken_by)"
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, cols), []string{
		"I2|outside_rule|[P1, 2]|ref_cur|['tolerance_match(i.amount, p.amount, 0.50)']|['abs(i.amount - p.amount) = 1.00']",
		"I3|no_candidate|NULL|NULL|NULL|NULL", // R3 is paid in EUR
		"I4|null_key|NULL|NULL|NULL|NULL",
	})
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, cols), []string{
		"P1|2|outside_rule|I2|ref_cur|['tolerance_match(i.amount, p.amount, 0.50)']|['abs(i.amount - p.amount) = 1.00']",
		"P2|1|no_candidate|NULL|NULL|NULL|NULL",
		"P3|1|null_key|NULL|NULL|NULL|NULL",
	})
}

// More than kalla.MaxExplainCandidates rows of the other side sharing a
// row's key make it too_many_candidates (counted, not explained);
// exactly the bound is still explained.
func TestExplainTooManyCandidates(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	var pay strings.Builder
	pay.WriteString("pid,ref,amount\n")
	for i := range kalla.MaxExplainCandidates + 1 {
		fmt.Fprintf(&pay, "X%d,RX,%d.00\n", i, 500+i)
		if i < kalla.MaxExplainCandidates {
			fmt.Fprintf(&pay, "Y%d,RY,%d.00\n", i, 500+i)
		}
	}
	left := b.write(t, "invoices.csv", "id,ref,amount\nIX,RX,1.00\nIY,RY,1.00\n")
	job := b.job("", left, b.write(t, "payments.csv", pay.String()), []string{"id"}, []string{"pid"})
	job.Explain = true
	job.Rules = []kalla.Rule{{Name: "by_ref", MatchSQL: explainSQL}}
	res := b.run(t, job)
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, _kalla_reason, _kalla_near_key, _kalla_near_rule"), []string{
		"IX|too_many_candidates|NULL|by_ref",
		"IY|outside_rule|Y0|by_ref", // the nearest of exactly the bound
	})
	want := &kalla.ReasonCounts{
		Left:  map[string]int64{"too_many_candidates": 1, "outside_rule": 1},
		Right: map[string]int64{"outside_rule": 2*kalla.MaxExplainCandidates + 1},
	}
	if !reflect.DeepEqual(res.Reasons, want) {
		t.Errorf("reasons %+v, want %+v", res.Reasons, want)
	}
}

// rules[i].explain explains with that rule only: every explanation names
// it, even where an earlier rule (not explaining) would fail as few
// conditions, and its takings by the earlier rule are named.
func TestExplainOneRuleOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	job := explainJob(b, b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments))
	job.Explain = false
	job.Rules[0].Explain = true
	// Not p.amount = i.amount: an equality between the sources is part of
	// the key, and P2 would have no candidate in "exact".
	job.Rules = append([]kalla.Rule{{Name: "exact", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND abs(p.amount - i.amount) < 0.001"}}, job.Rules...)
	res := b.run(t, job)
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "pid, _kalla_reason, _kalla_near_key, _kalla_near_rule, _kalla_near_taken_by"), []string{
		"P2|outside_rule|I2|by_ref|NULL",
		"P3|no_candidate|NULL|NULL|NULL",
		"P5|taken|I4|by_ref|exact",
		"P6|tie|I6|by_ref|NULL",
		"P7|tie|I6|by_ref|NULL",
	})
	kallatest.SameRows(t, "unmatched left", parquet(t, res.OutputPaths.UnmatchedLeft, "id, _kalla_reason, _kalla_near_rule"), []string{
		"I2|outside_rule|by_ref", "I3|no_candidate|NULL", "I5|null_key|NULL", "I6|tie|by_ref",
	})

	// Both explaining: P2 fails one condition of each rule, and the
	// earlier rule wins.
	job.Rules[0].Explain = true
	res = b.run(t, job)
	kallatest.SameRows(t, "P2 with both", ducktest.Rows(t, "SELECT pid, _kalla_near_rule FROM '"+res.OutputPaths.UnmatchedRight+"' WHERE pid = 'P2'"), []string{"P2|exact"})
}

// A dry run of an explained job counts the reasons and writes nothing.
func TestExplainDryRun(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	job := explainJob(b, b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments))
	res, err := b.runner.DryRun(t.Context(), job, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &kalla.ReasonCounts{
		Left:  map[string]int64{"outside_rule": 1, "no_candidate": 1, "null_key": 1, "tie": 1},
		Right: map[string]int64{"outside_rule": 1, "no_candidate": 1, "taken": 1, "tie": 2},
	}
	if !res.DryRun || res.MatchedCount != 2 || res.UnmatchedLeftCount != 4 || res.UnmatchedRightCount != 5 || !reflect.DeepEqual(res.Reasons, want) {
		t.Errorf("dry run %+v reasons %+v, want 2 matched, 4 and 5 unmatched, reasons %+v", res, res.Reasons, want)
	}
	if res.OutputPaths != (kalla.OutputPaths{}) {
		t.Errorf("dry run output paths %+v", res.OutputPaths)
	}
	if _, err := os.Stat(job.OutputPath); !os.IsNotExist(err) {
		t.Errorf("dry run wrote %s (%v)", job.OutputPath, err)
	}
}

// A confirmed file names its keys as a rule's result does when both
// sources call their key id: left_src_id and right_src_id; its own other
// columns go to matched.parquet.
func TestConfirmedAliasPrefixedKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", explainInvoices)
	right := b.write(t, "payments.csv", strings.Replace(explainPayments, "pid,", "id,", 1))
	job := b.job("", left, right, []string{"id"}, []string{"id"})
	job.Rules = []kalla.Rule{{Name: "exact", MatchSQL: "SELECT i.id AS left_src_id, p.id AS right_src_id FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"}}
	job.Confirmed = b.write(t, "confirmed.csv", "left_src_id,right_src_id,note,_kalla_rule\nI4,P5,checked by ann,near\n")
	res := b.run(t, job)
	kallatest.SameRows(t, "matched", parquet(t, res.OutputPaths.Matched, "_kalla_rule, left_src_id, right_src_id, note"), []string{
		"confirmed|I4|P5|checked by ann",
	})
	if c := res.Rules[0]; c.Name != kalla.ConfirmedRule || c.Candidates != 1 || c.Matched != 1 {
		t.Errorf("confirmed counts %+v", c)
	}
	kallatest.SameRows(t, "unmatched right", parquet(t, res.OutputPaths.UnmatchedRight, "id"), []string{"P1", "P2", "P3", "P4", "P6", "P7"})
	if _, err := os.Stat(filepath.Join(filepath.Dir(res.OutputPaths.Matched), kalla.SuggestedFile)); !os.IsNotExist(err) {
		t.Errorf("suggested.parquet without a suggested rule (%v)", err)
	}
}
