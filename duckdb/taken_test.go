package duckdb_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// The keys a rule took are read in the source's types. A rule that returns
// a key as another type (here text for an integer id) takes the same rows
// as one returning it as it is: the later rule and the unmatched files see
// the same rows; and a key that does not convert fails the job when the
// rule is done, naming what was being recorded.
func TestTakenKeysOfAnotherType(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left := b.write(t, "invoices.csv", "id,ref,amount\n1,R1,10.00\n2,R2,20.00\n3,R3,30.00\n4,R4,40.00\n")
	right := b.write(t, "payments.csv", "pid,ref,amount\n11,R1,10.00\n12,R2,20.50\n13,R3,31.00\n14,R9,40.00\n")
	rules := func(key string) []kalla.Rule {
		return []kalla.Rule{
			{Name: "exact", MatchSQL: "SELECT " + key + " AS id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"},
			{Name: "near", MatchSQL: "SELECT " + key + " AS id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND abs(p.amount - i.amount) <= 0.50"},
		}
	}
	run := func(name, key string) (*kalla.Result, error) {
		job := b.job("", left, right, []string{"id"}, []string{"pid"})
		job.OutputPath = filepath.Join(b.dir, name)
		job.Rules = rules(key)
		return b.runner.Run(t.Context(), job, nil)
	}
	same, err := run("same", "i.id")
	if err != nil {
		t.Fatal(err)
	}
	text, err := run("text", "CAST(i.id AS VARCHAR)")
	if err != nil {
		t.Fatal(err)
	}
	if same.MatchedCount != 2 || text.MatchedCount != same.MatchedCount || text.UnmatchedLeftCount != same.UnmatchedLeftCount || text.UnmatchedRightCount != same.UnmatchedRightCount {
		t.Fatalf("text keys: %d matched, %d/%d unmatched; same keys: %d, %d/%d",
			text.MatchedCount, text.UnmatchedLeftCount, text.UnmatchedRightCount, same.MatchedCount, same.UnmatchedLeftCount, same.UnmatchedRightCount)
	}
	for _, f := range []string{kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile} {
		kallatest.SameRows(t, f, parquet(t, filepath.Join(b.dir, "text", f), "*"), parquet(t, filepath.Join(b.dir, "same", f), "*"))
	}
	kallatest.SameRows(t, "matched", parquet(t, filepath.Join(b.dir, "text", kalla.MatchedFile), "_kalla_rule, id, pid"),
		[]string{"exact|1|11", "near|2|12"})

	if _, err := run("bad", "'#' || i.id"); err == nil || !strings.Contains(err.Error(), "record matched keys") || !strings.Contains(err.Error(), "#1") {
		t.Fatalf("got %v, want the recording of the matched keys to fail on '#1'", err)
	}
}
