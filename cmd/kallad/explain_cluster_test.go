package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The planted exceptions of duckdb/explain_test.go, as SQL that runs in
// DuckDB and Postgres alike: amounts are NUMERIC and I5's reference is
// NULL.
var plantedData = []string{
	`CREATE TABLE invoices (id VARCHAR, ref VARCHAR, amount NUMERIC(12,2))`,
	`INSERT INTO invoices VALUES ('I1','R1',100.00), ('I2','R2',200.00), ('I3','R3',50.00), ('I4','R4',75.00), ('I5',NULL,20.00), ('I6','R6',30.00)`,
	`CREATE TABLE payments (pid VARCHAR, ref VARCHAR, amount NUMERIC(12,2))`,
	`INSERT INTO payments VALUES ('P1','R1',100.50), ('P2','R2',200.51), ('P3','R9',10.00), ('P4','R4',75.00), ('P5','R4',75.20), ('P6','R6',30.10), ('P7','R6',30.10)`,
}

const plantedSQL = `SELECT i.id, p.pid, abs(i.amount - p.amount) AS amount_diff
FROM left_src i JOIN right_src p ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50)`

// plantedRules explains the one exclusive rule of the planted cases.
var plantedRules = []any{map[string]any{"name": "by_ref", "match_sql": plantedSQL,
	"exclusive": map[string]any{"order_by": []any{"amount_diff"}, "ties": "leave_unmatched"}}}

// suggestRules are duckdb/suggested_test.go's: exact amounts, a suggested
// rule within 0.50, then any pair by reference.
var suggestRules = []any{
	map[string]any{"name": "exact", "match_sql": "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref AND p.amount = i.amount"},
	map[string]any{"name": "near", "status": "suggested", "match_sql": plantedSQL, "exclusive": map[string]any{"order_by": []any{"amount_diff"}}},
	map[string]any{"name": "any", "match_sql": "SELECT i.id, p.pid FROM left_src i JOIN right_src p ON p.ref = i.ref"},
}

// plantedJob is an explained job of rules over the planted invoices
// (left_src) and payments (right_src).
func plantedJob(t *testing.T, rules []any, left, right, callbackURL string) map[string]any {
	job := rulesJob(t, rules, left, right, callbackURL)
	job["primary_keys"] = map[string]any{"left_src": []any{"id"}, "right_src": []any{"pid"}}
	job["explain"] = true
	return job
}

// writePlanted writes the planted tables as files of format in dir.
func writePlanted(t *testing.T, dir, format string) (invoices, payments string) {
	t.Helper()
	return ducktest.WriteTables(t, plantedData, dir, format)
}

// plantedReasons are the reason counts of the planted cases.
var plantedReasons = &kalla.ReasonCounts{
	Left:  map[string]int64{"outside_rule": 1, "no_candidate": 1, "null_key": 1, "tie": 1},
	Right: map[string]int64{"outside_rule": 1, "no_candidate": 1, "taken": 1, "tie": 2},
}

// checkPlanted checks the planted cases' files and counts in res, as
// duckdb/explain_test.go states them.
func checkPlanted(t *testing.T, res kalla.Result) {
	t.Helper()
	const cols = "* EXCLUDE (ref, amount)"
	kallatest.SameRows(t, "matched", ducktest.Rows(t, "SELECT * FROM '"+res.OutputPaths.Matched+"'"), []string{
		"by_ref|I1|P1|0.50", "by_ref|I4|P4|0.00",
	})
	kallatest.SameRows(t, "unmatched left", ducktest.Rows(t, "SELECT "+cols+" FROM '"+res.OutputPaths.UnmatchedLeft+"'"), []string{
		"I2|outside_rule|P2|by_ref|['tolerance_match(i.amount, p.amount, 0.50)']|['amount_diff = 0.51', 'abs(i.amount - p.amount) = 0.51']|NULL",
		"I3|no_candidate|NULL|NULL|NULL|NULL|NULL",
		"I5|null_key|NULL|NULL|NULL|NULL|NULL",
		"I6|tie|NULL|by_ref|NULL|NULL|NULL",
	})
	kallatest.SameRows(t, "unmatched right", ducktest.Rows(t, "SELECT "+cols+" FROM '"+res.OutputPaths.UnmatchedRight+"'"), []string{
		"P2|outside_rule|I2|by_ref|['tolerance_match(i.amount, p.amount, 0.50)']|['amount_diff = 0.51', 'abs(i.amount - p.amount) = 0.51']|NULL",
		"P3|no_candidate|NULL|NULL|NULL|NULL|NULL",
		"P5|taken|I4|by_ref|[]|['amount_diff = 0.20', 'abs(i.amount - p.amount) = 0.20']|by_ref",
		"P6|tie|I6|by_ref|[]|['amount_diff = 0.10', 'abs(i.amount - p.amount) = 0.10']|NULL",
		"P7|tie|I6|by_ref|[]|['amount_diff = 0.10', 'abs(i.amount - p.amount) = 0.10']|NULL",
	})
	if !reflect.DeepEqual(res.Reasons, plantedReasons) {
		t.Errorf("reasons %+v, want %+v", res.Reasons, plantedReasons)
	}
	if s := summaryOf(t, res); !reflect.DeepEqual(s.Reasons, plantedReasons) {
		t.Errorf("summary.json reasons %+v, want %+v", s.Reasons, plantedReasons)
	}
}

// The planted exceptions read from Postgres (NUMERIC amounts, a NULL
// reference), CSV and Parquet get their reasons from `kallad run`; and a
// scheduler with two executor processes gives the same files, reasons,
// suggested pairs and counts with 1, 2 and 8 partitions: an explained job
// is partitioned on its rules' shared key, a job with confirmed pairs runs
// single. The complete callback carries the reasons, suggested_count and
// output_paths.suggested.
func TestClusterExplainEqualLocal(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	for _, q := range plantedData {
		db.Exec(t, q)
	}
	invCSV, payCSV := writePlanted(t, t.TempDir(), "csv")
	invPq, payPq := writePlanted(t, t.TempDir(), "parquet")
	sources := map[string][2]string{
		"postgres": {db.TableURI("invoices"), db.TableURI("payments")},
		"csv":      {invCSV, payCSV},
		"parquet":  {invPq, payPq},
	}
	confirmed := filepath.Join(t.TempDir(), "confirmed.csv")
	if err := os.WriteFile(confirmed, []byte("_kalla_rule,id,pid,amount_diff\nnear,I4,P5,0.20\nnear,I9,P1,0.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type jobCase struct {
		name string
		job  func(t *testing.T, src [2]string, cb string) map[string]any
		// plan is the split mode and the start of its reason.
		mode, reason string
	}
	jobs := []jobCase{
		{"explained", func(t *testing.T, src [2]string, cb string) map[string]any {
			return plantedJob(t, plantedRules, src[0], src[1], cb)
		}, "partition", "equality key ref = ref"},
		{"suggested", func(t *testing.T, src [2]string, cb string) map[string]any {
			return plantedJob(t, suggestRules, src[0], src[1], cb)
		}, "partition", "equality key ref = ref"},
		{"confirmed", func(t *testing.T, src [2]string, cb string) map[string]any {
			job := plantedJob(t, suggestRules, src[0], src[1], cb)
			job["confirmed"] = confirmed
			return job
		}, "single", ""},
	}
	kinds := []string{"postgres", "csv", "parquet"}
	want := map[string]kalla.Result{}
	for _, kind := range kinds {
		src := sources[kind]
		for _, jc := range jobs {
			res := runLocal(t, jc.job(t, src, ""))
			want[kind+"/"+jc.name] = res
			switch jc.name {
			case "explained":
				t.Run(kind+"_planted", func(t *testing.T) { checkPlanted(t, res) })
			case "suggested":
				if res.SuggestedCount != 2 || res.OutputPaths.Suggested == "" {
					t.Errorf("%s: suggested %d at %q, want 2", kind, res.SuggestedCount, res.OutputPaths.Suggested)
				}
				kallatest.SameRows(t, kind+" suggested", ducktest.Rows(t, "SELECT * FROM '"+res.OutputPaths.Suggested+"'"), []string{
					"near|I1|P1|0.50", "near|I6|P6|0.10",
				})
			case "confirmed":
				kallatest.SameRows(t, kind+" confirmed matched", ducktest.Rows(t, "SELECT _kalla_rule, id, pid FROM '"+res.OutputPaths.Matched+"'"), []string{
					"any|I2|P2", "confirmed|I4|P5",
				})
			}
		}
	}
	rv := newCallbackReceiver(t)
	for _, parts := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("%d_partitions", parts), func(t *testing.T) {
			data := t.TempDir()
			staging := filepath.Join(data, "staging")
			sched := startSchedulerArgs(t, data, []string{"--partitions", fmt.Sprint(parts)}, "KALLA_TASK_ACK_WAIT=3s")
			startExecutor(t, sched, staging)
			startExecutor(t, sched, staging)
			for _, kind := range kinds {
				for _, jc := range jobs {
					t.Run(kind+"_"+jc.name, func(t *testing.T) {
						job := jc.job(t, sources[kind], rv.base())
						runID := job["run_id"].(string)
						if code, body := sched.submit(t, job); code != 202 {
							t.Fatalf("submit: %d %s", code, body)
						}
						got := completeResult(t, rv, runID)
						local, localSummary := want[kind+"/"+jc.name], summaryOf(t, want[kind+"/"+jc.name])
						local.RunID, localSummary.RunID = runID, runID
						sameOutputs(t, got, local)
						if g, w := kallatest.Timeless(summaryOf(t, got)), kallatest.Timeless(localSummary); !reflect.DeepEqual(g, w) {
							t.Errorf("summary.json %+v\n        local %+v", g, w)
						}
						if got.Reasons == nil || !reflect.DeepEqual(got.Reasons, local.Reasons) {
							t.Errorf("callback reasons %+v, local %+v", got.Reasons, local.Reasons)
						}
						if jc.name != "explained" {
							if got.SuggestedCount != 2 || got.OutputPaths.Suggested == "" {
								t.Errorf("callback suggested_count %d at %q, want 2", got.SuggestedCount, got.OutputPaths.Suggested)
							}
							g := ducktest.Rows(t, "SELECT * FROM '"+got.OutputPaths.Suggested+"'")
							w := ducktest.Rows(t, "SELECT * FROM '"+local.OutputPaths.Suggested+"'")
							if strings.Join(g, "\n") != strings.Join(w, "\n") {
								t.Errorf("suggested.parquet %q, local %q", g, w)
							}
						}
						mode, reason := plannedAs(t, sched, runID)
						if mode != jc.mode || !strings.HasPrefix(reason, jc.reason) {
							t.Errorf("job planned %s (%s), want %s (%s)", mode, reason, jc.mode, jc.reason)
						}
						if !stagingEmpty(t, staging) {
							t.Errorf("staging files left after the job")
						}
					})
				}
			}
		})
	}
}
