package duckdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// Every user error is a *ValidationError naming the field, with a message
// that names the offending value, and nothing is written.
func TestValidationErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n")
	locked := b.write(t, "locked.csv", "a\n1\n")
	os.Chmod(locked, 0)
	good := func() *kalla.Job {
		return b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
	}
	cases := []struct {
		name   string
		mutate func(j *kalla.Job)
		field  string
		says   string
	}{
		{"empty match_sql", func(j *kalla.Job) { j.MatchSQL = "  " }, "match_sql", "required"},
		{"syntax error", func(j *kalla.Job) { j.MatchSQL = "SELECT * FRM left_src" }, "match_sql", `at character 14: "left_src"`},
		{"not a select", func(j *kalla.Job) { j.MatchSQL = "DROP TABLE left_src" }, "match_sql", "single SELECT"},
		{"two statements", func(j *kalla.Job) { j.MatchSQL = "SELECT 1; SELECT 2" }, "match_sql", "2 statements"},
		{"unknown column", func(j *kalla.Job) { j.MatchSQL = "SELECT i.nope FROM left_src i" }, "match_sql", `"nope"`},
		{"result lacks keys", func(j *kalla.Job) {
			j.MatchSQL = "SELECT i.amount FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id"
		}, "match_sql", `"invoice_id" (select it AS left_src_invoice_id)`},
		{"missing pk column", func(j *kalla.Job) { j.PrimaryKeys["right_src"] = []string{"pay_id"} }, "primary_keys.right_src", `"pay_id"`},
		{"pk for unknown alias", func(j *kalla.Job) { j.PrimaryKeys["bank"] = []string{"id"} }, "primary_keys.bank", "names no source"},
		{"duplicate alias", func(j *kalla.Job) { j.Sources[1].Alias = "LEFT_SRC" }, "sources[1].alias", "duplicate"},
		{"missing alias", func(j *kalla.Job) { j.Sources[0].Alias = "" }, "sources[0].alias", "required"},
		{"unknown scheme", func(j *kalla.Job) { j.Sources[1].URI = "ftp://host/x.csv" }, "sources[1].uri", `"ftp"`},
		{"missing file", func(j *kalla.Job) { j.Sources[0].URI = filepath.Join(b.dir, "nope.csv") }, "sources[0].uri", "does not exist"},
		{"unknown format", func(j *kalla.Job) { j.Sources[0].URI = inv + ".xlsx" }, "sources[0].uri", "format"},
		{"empty glob", func(j *kalla.Job) { j.Sources[0].URI = filepath.Join(b.dir, "*.parquet") }, "sources[0].uri", "no file matches"},
		{"filter column", func(j *kalla.Job) {
			j.Sources[0].Filters = []kalla.Filter{{Column: "colour", Op: kalla.OpEq, Value: []byte(`"red"`)}}
		}, "sources[0].filters[0].column", `"colour"`},
		{"filter value type", func(j *kalla.Job) {
			j.Sources[1].Filters = []kalla.Filter{{Column: "amount", Op: kalla.OpGt, Value: []byte(`"lots"`)}}
		}, "sources[1].filters[0].value", `"lots"`},
		{"filter op", func(j *kalla.Job) {
			j.Sources[1].Filters = []kalla.Filter{{Column: "amount", Op: "approx", Value: []byte(`1`)}}
		}, "sources[1].filters[0].op", `"approx"`},
		{"filter between arity", func(j *kalla.Job) {
			j.Sources[1].Filters = []kalla.Filter{{Column: "amount", Op: kalla.OpBetween, Value: []byte(`[1]`)}}
		}, "sources[1].filters[0].value", "[low, high]"},
		{"no primary keys", func(j *kalla.Job) { j.PrimaryKeys = nil }, "primary_keys.left_src", "required"},
		{"bad run_id", func(j *kalla.Job) { j.RunID = "run-1" }, "run_id", `"run-1"`},
		{"one source", func(j *kalla.Job) { j.Sources = j.Sources[:1] }, "sources", "exactly 2"},
	}
	if os.Geteuid() != 0 { // root reads any file
		cases = append(cases, struct {
			name   string
			mutate func(j *kalla.Job)
			field  string
			says   string
		}{"unreadable file", func(j *kalla.Job) { j.Sources[0].URI = locked }, "sources[0].uri", "permission denied"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := good()
			job.OutputPath = filepath.Join(b.dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			tc.mutate(job)
			_, err := b.runner.Run(context.Background(), job, nil)
			var v *kalla.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("want a validation error, got %v", err)
			}
			if v.Field != tc.field || !strings.Contains(v.Message, tc.says) {
				t.Errorf("got field %q message %q; want field %q mentioning %q", v.Field, v.Message, tc.field, tc.says)
			}
			if kalla.ErrorStage(err) != kalla.StageValidating {
				t.Errorf("stage %q, want validating", kalla.ErrorStage(err))
			}
			if _, err := os.Stat(job.OutputPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output folder was created for an invalid job")
			}
		})
	}
}

// A rerun replaces the previous result; a failed run leaves it untouched.
func TestRerunReplacesAndFailureKeepsPreviousResult(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n2,2.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n")
	job := b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
	first := b.run(t, job)
	b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n2,2,2.00\n")
	job.RunID = ""
	second := b.run(t, job)
	if first.MatchedCount != 1 || second.MatchedCount != 2 {
		t.Fatalf("matched %d then %d, want 1 then 2", first.MatchedCount, second.MatchedCount)
	}
	summary, _ := os.ReadFile(filepath.Join(job.OutputPath, kalla.SummaryFile))
	if !strings.Contains(string(summary), second.RunID) {
		t.Errorf("summary.json is not the second run's: %s", summary)
	}
	// A run that fails while matching leaves the second result in place.
	job.RunID = ""
	job.MatchSQL = "SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON (1 / (p.amount - p.amount))::INT = 1 AND p.invoice_ref::VARCHAR = error('boom')"
	if _, err := b.runner.Run(context.Background(), job, nil); err == nil {
		t.Fatal("failing match_sql succeeded")
	}
	kallatest.SameRows(t, "matched after failed rerun", parquet(t, second.OutputPaths.Matched, "count(*)"), []string{"2"})
	entries, _ := os.ReadDir(job.OutputPath)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".kalla-tmp") {
			t.Errorf("temporary folder %s left behind", e.Name())
		}
	}
}

// Cancelling the context stops the job and says so.
func TestCancelledJobReportsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{})
	inv := filepath.Join(b.dir, "inv.parquet")
	ducktest.Query(t, "COPY (SELECT i AS invoice_id, i % 1000 AS k FROM range(200000) t(i)) TO '"+inv+"'")
	job := b.job("SELECT a.invoice_id AS left_src_invoice_id, b.invoice_id AS right_src_invoice_id FROM left_src a JOIN right_src b ON a.k = b.k",
		inv, inv, []string{"invoice_id"}, []string{"invoice_id"})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := b.runner.Run(ctx, job, func(p kalla.Progress) {
		if p.Stage == kalla.StageMatching {
			cancel()
		}
	})
	if !errors.Is(err, kalla.ErrCancelled) || kalla.ErrorStage(err) != kalla.StageCancelled {
		t.Fatalf("got %v (stage %q), want cancellation", err, kalla.ErrorStage(err))
	}
}
