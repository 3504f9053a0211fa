package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// carryMatchSQL matches a bank line to a ledger entry of its reference and
// amount, and keeps the bank line's lineage in the result.
const carryMatchSQL = `SELECT l.id AS l_id, r.pid AS r_pid, l._kalla_first_seen_run AS first_seen_run,
	l._kalla_runs_open AS runs_open FROM l JOIN r ON r.ref = l.id AND r.amount = l.amount`

// carryDay is one day of the chain: its sources' rows (CSV without the
// header) and its carry_over.
type carryDay struct {
	bank, ledger string
	carry        map[string]any
}

// writeCarryJob writes the day's sources into dir and returns its job,
// which writes into dir/out.
func writeCarryJob(t *testing.T, dir, runID string, d carryDay) map[string]any {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bank, ledger := filepath.Join(dir, "bank.csv"), filepath.Join(dir, "ledger.csv")
	for path, body := range map[string]string{bank: "id,amount,value_date\n" + d.bank, ledger: "pid,ref,amount\n" + d.ledger} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]any{
		"run_id":    runID,
		"match_sql": carryMatchSQL,
		"sources": []any{
			map[string]any{"alias": "l", "uri": bank},
			map[string]any{"alias": "r", "uri": ledger},
		},
		"output_path":  filepath.Join(dir, "out"),
		"primary_keys": map[string]any{"l": []any{"id"}, "r": []any{"pid"}},
		"carry_over":   d.carry,
	}
}

// runCarry runs job with `kallad run` and returns its payload; a failure
// fails t.
func runCarry(t *testing.T, job map[string]any, env ...string) kalla.Result {
	t.Helper()
	res, stderr, code := runCarryJob(t, job, env...)
	if code != 0 {
		t.Fatalf("kallad run: exit %d: %s", code, stderr)
	}
	return res
}

// runCarryJob runs job with `kallad run` and returns its payload, stderr
// and exit code.
func runCarryJob(t *testing.T, job map[string]any, env ...string) (kalla.Result, string, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.json")
	raw, _ := json.Marshal(job)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := kalladIn(t, t.TempDir(), env, "run", path)
	var res kalla.Result
	if code == 0 {
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("stdout is not the completion payload: %v\n%s", err, stdout)
		}
	}
	return res, stderr, code
}

// lineageRows reads a result file's keys and lineage, sorted.
func lineageRows(t *testing.T, path, key string) []string {
	t.Helper()
	return ducktest.Rows(t, "SELECT "+key+", _kalla_first_seen_run, _kalla_first_seen_at, _kalla_runs_open, _kalla_age_days FROM '"+path+"'")
}

// The chain of three daily runs, each carrying the open items of
// the one before, through `kallad run`:
//
//   - day 1 (2026-03-01) starts the chain: A1 matches; A2 (its ledger entry
//     comes on day 2), A3 (never matched), A4 (value date 2025-12-01) and
//     the ledger's P9 stay open;
//   - day 2 (2026-03-02, max_age_days 60 by value_date on the bank side):
//     A2 clears against P2 with day 1 as first seen; A3, sent again, is
//     one row (today's) first seen on day 1; A4, 91 days old, expires;
//   - day 3 (2026-03-10): A5 clears; A3 has been open three runs, 18 days
//     after its value date; P9, whose side has no value_date, is 9 days
//     old from first seen.
//
// Rerunning day 2 with the same run id and as_of gives the same rows.
func TestCarryOverThreeDays(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	runs := [3]string{kalla.NewRunID(), kalla.NewRunID(), kalla.NewRunID()}
	days := [3]carryDay{
		{bank: "A1,10.00,2026-03-01\nA2,20.00,2026-03-01\nA3,30.00,2026-02-20\nA4,40.00,2025-12-01\n",
			ledger: "P1,A1,10.00\nP9,ZZ,5.00\n",
			carry:  map[string]any{"as_of": "2026-03-01"}},
		{bank: "A3,30.00,2026-02-20\nA5,50.00,2026-03-02\n",
			ledger: "P2,A2,20.00\n",
			carry:  map[string]any{"from": filepath.Join(root, "day1", "out"), "as_of": "2026-03-02", "max_age_days": 60, "age_from": "value_date"}},
		{bank: "A6,60.00,2026-03-10\n",
			ledger: "P3,A5,50.00\n",
			carry:  map[string]any{"from": filepath.Join(root, "day2", "out"), "as_of": "2026-03-10", "max_age_days": 60, "age_from": "value_date"}},
	}
	var res [3]kalla.Result
	var jobs [3]map[string]any
	for i, d := range days {
		jobs[i] = writeCarryJob(t, filepath.Join(root, "day"+string(rune('1'+i))), runs[i], d)
		res[i] = runCarry(t, jobs[i])
	}
	d1, d2, d3 := runs[0], runs[1], runs[2]

	// Day 1: every row is first seen today.
	kallatest.SameRows(t, "day 1 unmatched_left", lineageRows(t, res[0].OutputPaths.UnmatchedLeft, "id"), []string{
		"A2|" + d1 + "|2026-03-01|1|0", "A3|" + d1 + "|2026-03-01|1|0", "A4|" + d1 + "|2026-03-01|1|0",
	})
	if res[0].OutputPaths.ExpiredLeft != "" {
		t.Errorf("day 1 has no max_age_days but names expired files: %+v", res[0].OutputPaths)
	}

	// Day 2.
	kallatest.SameRows(t, "day 2 matched", ducktest.Rows(t, "SELECT * FROM '"+res[1].OutputPaths.Matched+"'"), []string{
		"A2|P2|" + d1 + "|2",
	})
	kallatest.SameRows(t, "day 2 unmatched_left", lineageRows(t, res[1].OutputPaths.UnmatchedLeft, "id"), []string{
		"A3|" + d1 + "|2026-03-01|2|10", "A5|" + d2 + "|2026-03-02|1|0",
	})
	kallatest.SameRows(t, "day 2 unmatched_right", lineageRows(t, res[1].OutputPaths.UnmatchedRight, "pid"), []string{
		"P9|" + d1 + "|2026-03-01|2|1",
	})
	kallatest.SameRows(t, "day 2 expired_left", lineageRows(t, res[1].OutputPaths.ExpiredLeft, "id"), []string{
		"A4|" + d1 + "|2026-03-01|2|91",
	})
	kallatest.SameRows(t, "day 2 expired_right", lineageRows(t, res[1].OutputPaths.ExpiredRight, "pid"), nil)
	// Today's A3, not the carried one: the values are today's source's.
	kallatest.SameRows(t, "day 2 A3", ducktest.Rows(t, "SELECT id, amount, value_date FROM '"+res[1].OutputPaths.UnmatchedLeft+"' WHERE id = 'A3'"),
		[]string{"A3|30.00|2026-02-20"})
	want2 := &kalla.CarryOverCounts{FromRunID: d1, AsOf: "2026-03-02",
		Carried: kalla.SideCount{Left: 3, Right: 1}, Cleared: kalla.SideCount{Left: 1}, Replaced: kalla.SideCount{Left: 1}, Expired: kalla.SideCount{Left: 1}}
	if !reflect.DeepEqual(res[1].CarryOver, want2) {
		t.Errorf("day 2 carry_over %+v, want %+v", res[1].CarryOver, want2)
	}

	// Day 3.
	kallatest.SameRows(t, "day 3 matched", ducktest.Rows(t, "SELECT * FROM '"+res[2].OutputPaths.Matched+"'"), []string{
		"A5|P3|" + d2 + "|2",
	})
	kallatest.SameRows(t, "day 3 unmatched_left", lineageRows(t, res[2].OutputPaths.UnmatchedLeft, "id"), []string{
		"A3|" + d1 + "|2026-03-01|3|18", "A6|" + d3 + "|2026-03-10|1|0",
	})
	kallatest.SameRows(t, "day 3 unmatched_right", lineageRows(t, res[2].OutputPaths.UnmatchedRight, "pid"), []string{
		"P9|" + d1 + "|2026-03-01|3|9",
	})
	nine, eighteen := int64(9), int64(18)
	wantAge := &kalla.Ageing{
		Left:  kalla.AgeBuckets{Days0: 1, Days8to30: 1, OldestDays: &eighteen},
		Right: kalla.AgeBuckets{Days8to30: 1, OldestDays: &nine},
	}
	if !reflect.DeepEqual(res[2].Ageing, wantAge) {
		t.Errorf("day 3 ageing %s, want %s", mustJSON(res[2].Ageing), mustJSON(wantAge))
	}
	// Every carried item is cleared, still open or expired.
	for i, r := range res[1:] {
		co := r.CarryOver
		for side, n := range [2][4]int64{
			{co.Carried.Left, co.Cleared.Left, co.Expired.Left, openBefore(t, r.OutputPaths.UnmatchedLeft)},
			{co.Carried.Right, co.Cleared.Right, co.Expired.Right, openBefore(t, r.OutputPaths.UnmatchedRight)},
		} {
			if n[0] != n[1]+n[2]+n[3] {
				t.Errorf("day %d side %d: carried %d != cleared %d + expired %d + still open %d", i+2, side, n[0], n[1], n[2], n[3])
			}
		}
	}
	// summary.json holds the same payload.
	var summary kalla.Result
	raw, err := os.ReadFile(filepath.Join(root, "day3", "out", kalla.SummaryFile))
	if err != nil || json.Unmarshal(raw, &summary) != nil {
		t.Fatalf("read day 3 summary: %v", err)
	}
	if !reflect.DeepEqual(kallatest.Timeless(summary), kallatest.Timeless(res[2])) || !strings.Contains(string(raw), `">90d": 0`) {
		t.Errorf("summary.json differs from the payload:\n%s", raw)
	}

	// Rerunning day 2 (same run id and as_of) into another folder gives
	// the same rows and columns in every file.
	again := map[string]any{}
	for k, v := range jobs[1] {
		again[k] = v
	}
	again["output_path"] = filepath.Join(root, "day2-again")
	rerun := runCarry(t, again)
	if !reflect.DeepEqual(rerun.CarryOver, res[1].CarryOver) || !reflect.DeepEqual(rerun.Ageing, res[1].Ageing) {
		t.Errorf("rerun of day 2: %s, first run %s", mustJSON(rerun), mustJSON(res[1]))
	}
	for _, f := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.ExpiredLeftFile, kalla.ExpiredRightFile} {
		a, b := filepath.Join(root, "day2", "out", f), filepath.Join(root, "day2-again", f)
		kallatest.SameRows(t, "rerun "+f+" schema", ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+b+"')"),
			ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+a+"')"))
		kallatest.SameRows(t, "rerun "+f, ducktest.Rows(t, "SELECT * FROM '"+b+"'"), ducktest.Rows(t, "SELECT * FROM '"+a+"'"))
	}
}

// openBefore counts the rows of an unmatched file seen in an earlier run.
func openBefore(t *testing.T, path string) int64 {
	t.Helper()
	rows := ducktest.Query(t, "SELECT count(*) FROM '"+path+"' WHERE _kalla_runs_open > 1")
	var n int64
	if err := json.Unmarshal([]byte(rows[0]), &n); err != nil {
		t.Fatalf("count %q: %v", rows[0], err)
	}
	return n
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A carry-over that cannot be taken up is refused before any row is read,
// naming the field and why: no summary.json where from points, a carried
// column whose values today's type cannot hold, a column on one side only,
// an age_from that is not a date or names no column.
func TestCarryOverErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	day1 := writeCarryJob(t, filepath.Join(root, "day1"), kalla.NewRunID(), carryDay{
		bank: "A1,10.50,2026-03-01\n", ledger: "P1,ZZ,1.00\n", carry: map[string]any{"as_of": "2026-03-01"},
	})
	runCarry(t, day1)
	from := filepath.Join(root, "day1", "out")
	empty := t.TempDir()
	for _, tc := range []struct {
		name         string
		bank         string // replaces the bank file, header included
		carry        map[string]any
		field        string
		says         []string
		wantExitZero bool
	}{
		{"no summary", "", map[string]any{"from": empty}, "carry_over.from", []string{"summary.json", "not a complete result"}, false},
		{"type", "id,amount,value_date\nA2,7,2026-03-02\n", map[string]any{"from": from}, "carry_over.from",
			[]string{`"amount"`, "left", "DECIMAL(18,2)", "BIGINT", `"10.50"`}, false},
		{"missing column", "id,amount\nA2,7.00\n", map[string]any{"from": from}, "carry_over.from",
			[]string{`"value_date"`, "left", `"l"`}, false},
		{"age_from text", "", map[string]any{"from": from, "age_from": "id"}, "carry_over.age_from", []string{`"id"`, "DATE or TIMESTAMP"}, false},
		{"age_from nowhere", "", map[string]any{"from": from, "age_from": "booked"}, "carry_over.age_from", []string{`"booked"`, "neither source"}, false},
		{"as_of", "", map[string]any{"from": from, "as_of": "2026-13-01"}, "carry_over.as_of", []string{"YYYY-MM-DD"}, false},
		{"max_age_days", "", map[string]any{"from": from, "max_age_days": -1}, "carry_over.max_age_days", []string{"0 or more"}, false},
		{"type that converts", "id,amount,value_date\nA2,7.5,2026-03-02\n", map[string]any{"from": from}, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			job := writeCarryJob(t, dir, kalla.NewRunID(), carryDay{bank: "A2,7.00,2026-03-02\n", ledger: "P2,A2,7.00\n", carry: tc.carry})
			if tc.bank != "" {
				if err := os.WriteFile(filepath.Join(dir, "bank.csv"), []byte(tc.bank), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, stderr, code := runCarryJob(t, job)
			if tc.wantExitZero {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				// Today's amount is DECIMAL(18,1): the carried 10.50 is
				// 10.5 exactly, and is carried in today's type.
				kallatest.SameRows(t, "unmatched_left", ducktest.Rows(t, "SELECT id, amount FROM '"+res.OutputPaths.UnmatchedLeft+"'"),
					[]string{"A1|10.5", "A2|7.5"})
				return
			}
			if code == 0 {
				t.Fatalf("the job ran: %+v", res)
			}
			if !strings.Contains(stderr, tc.field+":") {
				t.Errorf("stderr does not name %s:\n%s", tc.field, stderr)
			}
			for _, s := range tc.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not say %s:\n%s", s, stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out", kalla.SummaryFile)); err == nil {
				t.Error("a refused job wrote a result")
			}
		})
	}
}

// Through the API, a carry_over.from outside --allow-paths is refused as a
// source there is, and one without summary.json is a 400 naming the field.
func TestCarryOverAPIRefuses(t *testing.T) {
	t.Parallel()
	allowed, outside := t.TempDir(), t.TempDir()
	prev := writeCarryJob(t, filepath.Join(outside, "day1"), kalla.NewRunID(), carryDay{
		bank: "A1,10.00,2026-03-01\n", ledger: "P1,ZZ,1.00\n", carry: map[string]any{"as_of": "2026-03-01"},
	})
	runCarry(t, prev)
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--allow-paths", allowed})
	job := writeCarryJob(t, filepath.Join(allowed, "day2"), kalla.NewRunID(), carryDay{
		bank: "A2,7.00,2026-03-02\n", ledger: "P2,A2,7.00\n", carry: map[string]any{"from": filepath.Join(outside, "day1", "out")},
	})
	refused(t, sched, "from outside", job, "carry_over.from", "KALLA_ALLOW_PATHS")
	job["carry_over"] = map[string]any{"from": filepath.Join(allowed, "nothing-here")}
	refused(t, sched, "no summary", job, "carry_over.from", "summary.json")

	// Allowed and complete: accepted and run, on the day it starts.
	if err := os.Rename(filepath.Join(outside, "day1"), filepath.Join(allowed, "day1")); err != nil {
		t.Fatal(err)
	}
	job["carry_over"] = map[string]any{"from": filepath.Join(allowed, "day1", "out")}
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	sched.waitState(t, job["run_id"].(string), kalla.JobCompleted)
	var summary kalla.Result
	raw, err := os.ReadFile(filepath.Join(allowed, "day2", "out", kalla.SummaryFile))
	if err != nil || json.Unmarshal(raw, &summary) != nil || summary.CarryOver == nil || summary.CarryOver.Carried.Left != 1 || summary.CarryOver.AsOf == "" {
		t.Errorf("summary: %v %s", err, raw)
	}
}
