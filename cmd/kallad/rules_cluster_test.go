package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// A job of three rules sharing the key customer_id (exact references, may
// use a row twice; closest amount and date, both sides exclusive, ties left
// unmatched; nearest date, payments exclusive) is partitioned on that key,
// and a scheduler with two executor processes gives exactly what `kallad
// run` gives, with 1, 2 and 8 partitions, from Parquet read in place, CSV
// cut into byte ranges and Postgres cut into page ranges: the same rows and
// column types in every file, the same counts and per-rule counts (but
// elapsed_ms) in the complete callback, in summary.json and in GET
// /api/jobs/{id}.
func TestClusterRulesPartitionedEqualLocal(t *testing.T) {
	t.Parallel()
	db := seedRules(t)
	inv, pay := writeRulesFiles(t, t.TempDir(), "parquet")
	invCSV, payCSV := writeRulesFiles(t, t.TempDir(), "csv")
	rv := newCallbackReceiver(t)
	kinds := []string{"parquet", "csv", "postgres"}
	sources := map[string][2]string{
		"parquet":  {inv, pay},
		"csv":      {invCSV, payCSV},
		"postgres": {db.TableURI("invoices"), db.TableURI("payments")},
	}
	// The local results, once per source: they depend on no partition count.
	want := map[string]kalla.Result{}
	for _, kind := range kinds {
		src := sources[kind]
		want[kind] = runLocal(t, rulesJob(t, sharedKeyRules, src[0], src[1], ""))
		everyRuleMatches(t, want[kind], "exact_ref", "amount_date", "split_payments")
		if want[kind].Rules[1].Ties == 0 {
			t.Errorf("%s: the exclusive rule met no tie: %+v", kind, want[kind].Rules[1])
		}
	}
	for _, parts := range []int{1, 2, 8} {
		// Not "partitions=N": DuckDB would read a folder named so below
		// the test's temp folder as a hive partition column.
		t.Run(fmt.Sprintf("%d_partitions", parts), func(t *testing.T) {
			data := t.TempDir()
			staging := filepath.Join(data, "staging")
			sched := startSchedulerArgs(t, data, []string{"--partitions", fmt.Sprint(parts)}, "KALLA_TASK_ACK_WAIT=3s", "KALLA_PG_MIN_RANGE_PAGES=2")
			startExecutor(t, sched, staging, "KALLA_CSV_MIN_SPLIT_BYTES=1024")
			startExecutor(t, sched, staging, "KALLA_CSV_MIN_SPLIT_BYTES=1024")
			for _, kind := range kinds {
				t.Run(kind, func(t *testing.T) {
					src := sources[kind]
					job := rulesJob(t, sharedKeyRules, src[0], src[1], rv.base())
					runID := job["run_id"].(string)
					if code, body := sched.submit(t, job); code != 202 {
						t.Fatalf("submit: %d %s", code, body)
					}
					got := completeResult(t, rv, runID)
					// The local run was another job, of another run_id.
					local, localSummary := want[kind], summaryOf(t, want[kind])
					local.RunID, localSummary.RunID = runID, runID
					sameOutputs(t, got, local)
					if g, w := kallatest.Timeless(summaryOf(t, got)), kallatest.Timeless(localSummary); !reflect.DeepEqual(g, w) {
						t.Errorf("summary.json %+v\n        local %+v", g, w)
					}
					if v := sched.job(t, runID); v.Result == nil || !reflect.DeepEqual(v.Result.Rules, got.Rules) {
						t.Errorf("GET /api/jobs/%s result %+v, the callback's rules %+v", runID, v.Result, got.Rules)
					}
					mode, reason := plannedAs(t, sched, runID)
					if mode != "partition" || reason != "equality key customer_id = customer_id" {
						t.Errorf("job planned %s (%s), want partition on customer_id", mode, reason)
					}
					if kind != "parquet" && parts == 2 {
						checkSplit(t, sched.logs(), runID, map[string]int{"left_src": 2, "right_src": 2})
					}
					if !stagingEmpty(t, staging) {
						t.Errorf("staging files left after the job")
					}
				})
			}
		})
	}
}

var plannedRe = regexp.MustCompile(`msg="job planned".* run_id=(\S+) .*mode=(\w+) reason=("(?:[^"\\]|\\.)*"|\S+)`)

// plannedAs returns the split mode and reason the scheduler logged for runID.
func plannedAs(t *testing.T, sched *schedProc, runID string) (mode, reason string) {
	t.Helper()
	for _, m := range plannedRe.FindAllStringSubmatch(sched.logs(), -1) {
		if m[1] == runID {
			reason = m[3]
			if r, err := unquoteLog(reason); err == nil {
				reason = r
			}
			return m[2], reason
		}
	}
	t.Fatalf("no \"job planned\" line for %s", runID)
	return "", ""
}

// unquoteLog undoes slog's text quoting of a value.
func unquoteLog(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	var out string
	_, err := fmt.Sscanf(s, "%q", &out)
	return out, err
}

// noKeyRule joins on no equality between plain columns: amounts within a
// cent paid the day the invoice is due or the day after.
const noKeyRule = `SELECT l.invoice_id, r.payment_id, abs(l.amount - r.amount) AS amount_diff FROM left_src l JOIN right_src r
	ON abs(l.amount - r.amount) < 0.01 AND r.paid_on BETWEEN l.due_on AND l.due_on + INTERVAL 1 DAY AND l.invoice_id % 7 = 0`

// A job whose rules share no equality key, a one-rule job without a key
// (which a plain match_sql would broadcast) and an exclusive match_sql
// without a key each run whole on one executor, never broadcast (a
// broadcast row would be offered in every partition), with the reason in
// the scheduler's log, and give exactly what `kallad run` gives.
func TestClusterRulesWithoutSharedKeyRunSingle(t *testing.T) {
	t.Parallel()
	inv, pay := writeRulesFiles(t, t.TempDir(), "parquet")
	rv := newCallbackReceiver(t)
	data := t.TempDir()
	staging := filepath.Join(data, "staging")
	sched := startScheduler(t, data, "KALLA_TASK_ACK_WAIT=3s")
	execs := []*execProc{startExecutor(t, sched, staging), startExecutor(t, sched, staging)}
	exclusiveJob := func(t *testing.T) map[string]any {
		job := rulesJob(t, nil, inv, pay, rv.base())
		delete(job, "rules")
		job["match_sql"], job["exclusive"] = noKeyRule, map[string]any{"order_by": []any{"amount_diff"}}
		return job
	}
	cases := []struct {
		name   string
		job    func(t *testing.T) map[string]any
		reason string
		rules  []string
	}{
		{"no_shared_key", func(t *testing.T) map[string]any {
			return rulesJob(t, []any{sharedKeyRules[0], map[string]any{"name": "same_day", "match_sql": noKeyRule,
				"exclusive": map[string]any{"order_by": []any{"amount_diff"}}}}, inv, pay, rv.base())
		}, "the rules share no equality key between the sources", []string{"exact_ref", "same_day"}},
		{"one_rule_without_key", func(t *testing.T) map[string]any {
			return rulesJob(t, []any{map[string]any{"name": "same_day", "match_sql": noKeyRule}}, inv, pay, rv.base())
		}, `rule "same_day" has no equality key between the sources`, []string{"same_day"}},
		{"exclusive_match_sql_without_key", exclusiveJob,
			"an exclusive or explained match_sql without a usable equality key between the sources is not split", []string{"match"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := c.job(t)
			runID := job["run_id"].(string)
			if code, body := sched.submit(t, job); code != 202 {
				t.Fatalf("submit: %d %s", code, body)
			}
			got := completeResult(t, rv, runID)
			want := runLocal(t, job)
			everyRuleMatches(t, want, c.rules...)
			sameOutputs(t, got, want)
			if mode, reason := plannedAs(t, sched, runID); mode != "single" || !strings.HasPrefix(reason, c.reason) {
				t.Errorf("job planned %s (%s), want single: %s", mode, reason, c.reason)
			}
			// One executor ran the whole job: one task of kind job, and
			// no stage or match task.
			started := regexp.MustCompile(`msg="task started".* run_id=` + runID + ` .*kind=(\w+)`)
			var kinds []string
			for _, e := range execs {
				for _, m := range started.FindAllStringSubmatch(e.logs(), -1) {
					kinds = append(kinds, m[1])
				}
			}
			if !reflect.DeepEqual(kinds, []string{"plan", "job"}) && !reflect.DeepEqual(kinds, []string{"job", "plan"}) {
				t.Errorf("tasks started %q, want one plan and one job task", kinds)
			}
			if !stagingEmpty(t, staging) {
				t.Errorf("staging files left after the job")
			}
		})
	}
}
