package duckdb_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The explanation columns are written with the types docs/exceptions.md
// gives them, whichever way explain built them: Parquet strings (UTF8)
// read back as VARCHAR and VARCHAR[]. Explain builds the reasons, rule
// names and conditions as ENUM values, which the Parquet writer stores as
// the same strings; this checks that no reader sees anything else. The
// jobs take each way of building the explanations: a choice among entries
// (ties), the narrow write (one rule explained from its pairs) and a rule
// with no condition besides its key.
func TestExplainColumnsAreStrings(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	left, right := b.write(t, "invoices.csv", explainInvoices), b.write(t, "payments.csv", explainPayments)
	plain := explainJob(b, left, right)
	plain.Rules[0].Exclusive = nil
	keyOnly := explainJob(b, left, right)
	keyOnly.Rules = []kalla.Rule{{Name: "ref_only", MatchSQL: "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"}}
	want := []string{
		"_kalla_near_distance|VARCHAR[]", "_kalla_near_failed|VARCHAR[]", "_kalla_near_key|VARCHAR",
		"_kalla_near_rule|VARCHAR", "_kalla_near_taken_by|VARCHAR", "_kalla_reason|VARCHAR",
	}
	wantLeaves := []string{
		"_kalla_near_key|BYTE_ARRAY|UTF8", "_kalla_near_rule|BYTE_ARRAY|UTF8", "_kalla_near_taken_by|BYTE_ARRAY|UTF8",
		"_kalla_reason|BYTE_ARRAY|UTF8", "element|BYTE_ARRAY|UTF8", "element|BYTE_ARRAY|UTF8",
	}
	for i, job := range []*kalla.Job{explainJob(b, left, right), plain, keyOnly} {
		job.OutputPath = filepath.Join(b.dir, fmt.Sprintf("out%d", i))
		res := b.run(t, job)
		if res.Reasons == nil || len(res.Reasons.Left) == 0 {
			t.Fatalf("job %d: no reasons: %+v", i, res)
		}
		for _, f := range []string{res.OutputPaths.UnmatchedLeft, res.OutputPaths.UnmatchedRight} {
			kallatest.SameRows(t, f, ducktest.Rows(t, fmt.Sprintf(
				"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('%s')) WHERE column_name LIKE '\\_kalla\\_%%' ESCAPE '\\'", f)), want)
			kallatest.SameRows(t, f+" leaves", ducktest.Rows(t, fmt.Sprintf(
				"SELECT name, type, converted_type FROM parquet_schema('%s') WHERE type = 'BYTE_ARRAY' AND (name LIKE '\\_kalla\\_%%' ESCAPE '\\' OR name = 'element')", f)), wantLeaves)
		}
	}
}
