package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// carryKeyMatchSQL matches a bank line to the ledger entry of the same
// transaction id: l.id and r.pid are each side's primary key, so a
// carry-over job can be partitioned on them.
const carryKeyMatchSQL = `SELECT l.id AS l_id, r.pid AS r_pid, l._kalla_first_seen_run AS first_seen_run,
	l._kalla_runs_open AS runs_open, r._kalla_runs_open AS r_runs_open FROM l JOIN r ON r.pid = l.id AND r.amount = l.amount`

// splitCarryDays are two days of a chain over 50 transactions, enough
// keys to fill 8 partitions unevenly. Day 1 clears every 7th
// transaction and leaves the rest open, every 4th with a value date of
// 2025-12-01, and ledger entries L90-L99 that no bank line has. On day 2
// (max_age_days 60 by value date): every 5th open transaction is sent
// again with a changed amount (replaced), L90-L94 too; the ledger clears
// every 3rd transaction unless it was sent again changed; the old ones
// expire (an old one sent again expires as today's row); T41-T50 are new.
func splitCarryDays() [2]carryDay {
	var bank1, ledger1, bank2, ledger2 strings.Builder
	for i := 1; i <= 40; i++ {
		date := fmt.Sprintf("2026-02-%02d", i%28+1)
		if i%4 == 0 {
			date = "2025-12-01"
		}
		fmt.Fprintf(&bank1, "T%02d,%d.00,%s\n", i, i, date)
		switch {
		case i%7 == 0:
			fmt.Fprintf(&ledger1, "T%02d,T%02d,%d.00\n", i, i, i)
		case i%5 == 0:
			fmt.Fprintf(&bank2, "T%02d,%d.50,%s\n", i, i, date)
		}
		if i%3 == 0 && i%7 != 0 {
			fmt.Fprintf(&ledger2, "T%02d,T%02d,%d.00\n", i, i, i)
		}
	}
	for i := 90; i <= 99; i++ {
		fmt.Fprintf(&ledger1, "L%d,X%d,%d.00\n", i, i, i)
		if i < 95 {
			fmt.Fprintf(&ledger2, "L%d,X%d,%d.25\n", i, i, i)
		}
	}
	for i := 41; i <= 50; i++ {
		fmt.Fprintf(&bank2, "T%02d,%d.00,2026-03-02\n", i, i)
		if i%2 == 0 {
			fmt.Fprintf(&ledger2, "T%02d,T%02d,%d.00\n", i, i, i)
		}
	}
	return [2]carryDay{
		{bank: bank1.String(), ledger: ledger1.String(), carry: map[string]any{"as_of": "2026-03-01"}},
		{bank: bank2.String(), ledger: ledger2.String(), carry: map[string]any{"as_of": "2026-03-02", "max_age_days": 60, "age_from": "value_date"}},
	}
}

// Day 2 of a carry chain, partitioned on the transaction id (each side's
// primary key) at 1, 2 and 8 partitions, from CSV files (staged), Parquet
// files (read in place) and Postgres tables (split by the coordinator),
// writes what `kallad run` writes: every file row for row (matched,
// unmatched and expired, with their lineage), and summary.json's
// carry_over and ageing. A job whose rule key is not a primary key of its
// side still runs whole, and says why.
func TestClusterCarryOverEqualLocal(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	days := splitCarryDays()
	runCarry(t, writeCarryJob(t, filepath.Join(root, "day1"), kalla.NewRunID(), days[0]))
	day2 := withFrom(days[1], filepath.Join(root, "day1", "out"))

	type jobCase struct {
		name string
		job  map[string]any
		// mode is the plan's split mode, reason the start of its reason.
		mode, reason string
	}
	// Each case has a run id of its own, the same in each cluster as in
	// its local run: today's rows are first seen by it.
	keyed := func(dir string) map[string]any {
		job := writeCarryJob(t, filepath.Join(root, dir), kalla.NewRunID(), day2)
		job["match_sql"] = carryKeyMatchSQL
		return job
	}
	parquet := keyed("parquet")
	for i, name := range []string{"bank", "ledger"} {
		csv := filepath.Join(root, "parquet", name+".csv")
		pq := filepath.Join(root, "parquet", name+".parquet")
		ducktest.Query(t, "COPY (SELECT * FROM read_csv('"+csv+"', types = {'amount': 'DECIMAL(18,2)'})) TO '"+pq+"' (FORMAT parquet)")
		withSource(parquet, i, pq)
	}
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, "CREATE TABLE bank (id text PRIMARY KEY, amount numeric(12,2), value_date date)")
	db.Exec(t, "CREATE TABLE ledger (pid text PRIMARY KEY, ref text, amount numeric(12,2))")
	db.Exec(t, "INSERT INTO bank VALUES "+sqlRows(day2.bank))
	db.Exec(t, "INSERT INTO ledger VALUES "+sqlRows(day2.ledger))
	postgres := keyed("postgres")
	withSource(postgres, 0, db.TableURI("bank"))
	withSource(postgres, 1, db.TableURI("ledger"))
	cases := []jobCase{
		{"csv", keyed("csv"), "partition", "equality key "},
		{"parquet", parquet, "partition", "equality key "},
		{"postgres", postgres, "partition", "equality key "},
		{"ref_not_a_key", writeCarryJob(t, filepath.Join(root, "ref"), kalla.NewRunID(), day2), "single",
			`carry_over partitions only on a primary-key column; "ref" is not one of r's primary keys`},
	}
	want := map[string]kalla.Result{}
	for _, jc := range cases {
		res := runCarry(t, jc.job)
		want[jc.name] = res
		// The chain has each case the partitions must agree on.
		co := res.CarryOver
		if co == nil || res.Ageing == nil || co.Replaced.Left == 0 || co.Replaced.Right == 0 || co.Expired.Left == 0 || co.Cleared.Left == 0 {
			t.Fatalf("%s: local carry_over %s lacks a replaced, expired or cleared row", jc.name, mustJSON(co))
		}
	}

	// The clusters: a shared staging folder at 1, 2 and 8 partitions, and
	// an S3 staging prefix, through which the partial expired files go too.
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "kalla")
	type clusterCase struct {
		name    string
		parts   int
		staging string // "": a folder of the test's
		env     []string
	}
	clusters := []clusterCase{{"1_partitions", 1, "", nil}, {"2_partitions", 2, "", nil}, {"8_partitions", 8, "", nil},
		{"4_partitions_s3_staging", 4, "s3://kalla/staging", srv.Env(t)}}
	// fetched reports whether a partial result file name of runID was read
	// from the S3 staging.
	fetched := func(runID, name string) bool {
		for _, r := range srv.Requests() {
			if r.Op() == "GetObject" && strings.HasPrefix(r.Key, "staging/cluster/"+runID+"/") && strings.HasSuffix(r.Key, "/"+name) {
				return true
			}
		}
		return false
	}
	for _, cc := range clusters {
		t.Run(cc.name, func(t *testing.T) {
			data := t.TempDir()
			staging, left := cc.staging, func() bool { return len(srv.Keys(t, "kalla", "staging/")) > 0 }
			if staging == "" {
				staging = filepath.Join(data, "staging")
				left = func() bool { return !stagingEmpty(t, staging) }
			}
			rv := newCallbackReceiver(t)
			sched := startSchedulerArgs(t, data, []string{"--partitions", fmt.Sprint(cc.parts), "--staging-path", staging}, append(cc.env, "KALLA_TASK_ACK_WAIT=3s")...)
			startExecutor(t, sched, staging, cc.env...)
			startExecutor(t, sched, staging, cc.env...)
			for _, jc := range cases {
				if jc.mode == "single" && cc.parts != 8 {
					continue
				}
				t.Run(jc.name, func(t *testing.T) {
					job := map[string]any{}
					for k, v := range jc.job {
						job[k] = v
					}
					job["output_path"] = filepath.Join(data, jc.name, "out")
					job["callback_url"] = rv.base()
					if code, body := sched.submit(t, job); code != 202 {
						t.Fatalf("submit: %d %s", code, body)
					}
					runID := job["run_id"].(string)
					sameCarryRun(t, completeResult(t, rv, runID), want[jc.name])
					mode, reason := plannedAs(t, sched, runID)
					if mode != jc.mode || !strings.HasPrefix(reason, jc.reason) {
						t.Errorf("job planned %s (%s), want %s (%s)", mode, reason, jc.mode, jc.reason)
					}
					if left() {
						t.Errorf("staging files left after the job")
					}
					if cc.staging != "" && jc.mode == "partition" && !fetched(runID, kalla.ExpiredLeftFile) {
						t.Errorf("the merge fetched no partial %s from the S3 staging", kalla.ExpiredLeftFile)
					}
				})
			}
			if cc.parts != 8 {
				return
			}
			// A job without as_of runs on the day it starts: the plan fixes
			// it, and every task ages to it (a task without it is refused).
			t.Run("as_of_from_plan", func(t *testing.T) {
				job := keyed("no_as_of")
				carry := map[string]any{}
				for k, v := range job["carry_over"].(map[string]any) {
					carry[k] = v
				}
				delete(carry, "as_of")
				job["carry_over"], job["callback_url"] = carry, rv.base()
				before := time.Now().UTC().Format(time.DateOnly)
				if code, body := sched.submit(t, job); code != 202 {
					t.Fatalf("submit: %d %s", code, body)
				}
				got := completeResult(t, rv, job["run_id"].(string))
				after := time.Now().UTC().Format(time.DateOnly)
				if got.CarryOver == nil || (got.CarryOver.AsOf != before && got.CarryOver.AsOf != after) {
					t.Fatalf("carry_over %s, want as_of %s", mustJSON(got.CarryOver), before)
				}
				if mode, _ := plannedAs(t, sched, job["run_id"].(string)); mode != "partition" {
					t.Errorf("job planned %s, want partition", mode)
				}
				delete(job, "callback_url")
				carry["as_of"], job["output_path"] = got.CarryOver.AsOf, filepath.Join(root, "no_as_of", "local")
				sameCarryRun(t, got, runCarry(t, job))
			})
		})
	}
}

// sameCarryRun compares a cluster's result of a carry-over job with
// `kallad run`'s: the carry_over and ageing reported, every file, and
// summary.json.
func sameCarryRun(t *testing.T, got, local kalla.Result) {
	t.Helper()
	if !reflect.DeepEqual(got.CarryOver, local.CarryOver) || !reflect.DeepEqual(got.Ageing, local.Ageing) {
		t.Errorf("carry_over %s ageing %s\n   local %s %s", mustJSON(got.CarryOver), mustJSON(got.Ageing), mustJSON(local.CarryOver), mustJSON(local.Ageing))
	}
	sameCarryFiles(t, got, local)
	if g, w := kallatest.Timeless(summaryOf(t, got)), kallatest.Timeless(summaryOf(t, local)); !reflect.DeepEqual(g, w) {
		t.Errorf("summary.json %s\n        local %s", mustJSON(g), mustJSON(w))
	}
}

// sqlRows writes CSV lines (no quotes or commas inside fields) as the
// rows of an INSERT's VALUES.
func sqlRows(csv string) string {
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(csv), "\n") {
		rows = append(rows, "('"+strings.ReplaceAll(line, ",", "', '")+"')")
	}
	return strings.Join(rows, ", ")
}
