package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// carryChainDays are two days whose second carries the first's open
// items; the second's carry_over.from is set by the test.
var carryChainDays = [2]carryDay{
	{bank: "A1,10.00,2026-03-01\nA2,20.00,2026-03-01\nA3,30.00,2026-02-20\nA4,40.00,2025-12-01\n",
		ledger: "P1,A1,10.00\nP9,ZZ,5.00\n",
		carry:  map[string]any{"as_of": "2026-03-01"}},
	{bank: "A3,30.00,2026-02-20\nA5,50.00,2026-03-02\n",
		ledger: "P2,A2,20.00\n",
		carry:  map[string]any{"as_of": "2026-03-02", "max_age_days": 60, "age_from": "value_date"}},
}

// withFrom returns d with carry_over.from set.
func withFrom(d carryDay, from string) carryDay {
	carry := map[string]any{"from": from}
	for k, v := range d.carry {
		carry[k] = v
	}
	d.carry = carry
	return d
}

// sameCarryFiles compares every file two carry-over runs wrote, rows and
// column types.
func sameCarryFiles(t *testing.T, got, want kalla.Result) {
	t.Helper()
	sameOutputs(t, got, want)
	for _, f := range [][2]string{{got.OutputPaths.ExpiredLeft, want.OutputPaths.ExpiredLeft}, {got.OutputPaths.ExpiredRight, want.OutputPaths.ExpiredRight}} {
		kallatest.SameRows(t, filepath.Base(f[0])+" schema", ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+f[0]+"')"),
			ducktest.Rows(t, "SELECT name, type, logical_type FROM parquet_schema('"+f[1]+"')"))
		kallatest.SameRows(t, filepath.Base(f[0]), ducktest.Rows(t, "SELECT * FROM '"+f[0]+"'"), ducktest.Rows(t, "SELECT * FROM '"+f[1]+"'"))
	}
}

// A previous run published on S3 is carried over like a local one: day 1
// writes to s3://…/day1, day 2 carries from there, and gives the rows a
// chain of local folders gives. A prefix without summary.json, or in a
// bucket the allow-list does not name, is refused.
func TestCarryOverFromS3(t *testing.T) {
	t.Parallel()
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "kalla")
	env := srv.Env(t)
	root := t.TempDir()
	runs := [2]string{kalla.NewRunID(), kalla.NewRunID()}

	localDay1 := writeCarryJob(t, filepath.Join(root, "local1"), runs[0], carryChainDays[0])
	runCarry(t, localDay1)
	want := runCarry(t, writeCarryJob(t, filepath.Join(root, "local2"), runs[1], withFrom(carryChainDays[1], filepath.Join(root, "local1", "out"))))

	s3Day1 := writeCarryJob(t, filepath.Join(root, "s3-1"), runs[0], carryChainDays[0])
	s3Day1["output_path"] = "s3://kalla/results/day1"
	runCarry(t, s3Day1, env...)
	got := runCarry(t, writeCarryJob(t, filepath.Join(root, "s3-2"), runs[1], withFrom(carryChainDays[1], "s3://kalla/results/day1")), env...)
	if got.CarryOver == nil || got.CarryOver.FromRunID != runs[0] || got.CarryOver.Carried.Left != 3 {
		t.Errorf("carry_over from S3: %s", mustJSON(got.CarryOver))
	}
	sameCarryFiles(t, got, want)

	// A prefix with no summary.json is not a complete result.
	missing := writeCarryJob(t, filepath.Join(root, "s3-missing"), runs[1], withFrom(carryChainDays[1], "s3://kalla/results/nothing"))
	_, stderr, code := runCarryJob(t, missing, env...)
	if code == 0 || !strings.Contains(stderr, "carry_over.from:") || !strings.Contains(stderr, "summary.json") {
		t.Errorf("from an S3 prefix without summary.json: exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, srv.SecretAccessKey) {
		t.Errorf("the error shows the secret key: %s", stderr)
	}
	// A bucket outside the allow-list is refused as a source's would be.
	_, stderr, code = runCarryJob(t, writeCarryJob(t, filepath.Join(root, "s3-denied"), runs[1], withFrom(carryChainDays[1], "s3://kalla/results/day1")),
		append(env, "KALLA_ALLOW_S3_BUCKETS=other")...)
	if code == 0 || !strings.Contains(stderr, "carry_over.from:") || !strings.Contains(stderr, "KALLA_ALLOW_S3_BUCKETS") {
		t.Errorf("from a bucket not allowed: exit %d: %s", code, stderr)
	}
}

// A carry-over job submitted to a scheduler with an executor, whose rule
// key r.ref is not the ledger's primary key, runs whole on the executor
// (a partition would split a carried row from today's row of its key) and
// writes the files `kallad run` writes. TestClusterCarryOverEqualLocal
// partitions a job keyed on primary keys.
func TestCarryOverCluster(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	runs := [2]string{kalla.NewRunID(), kalla.NewRunID()}
	runCarry(t, writeCarryJob(t, filepath.Join(root, "day1"), runs[0], carryChainDays[0]))
	day2 := withFrom(carryChainDays[1], filepath.Join(root, "day1", "out"))
	want := runCarry(t, writeCarryJob(t, filepath.Join(root, "local2"), runs[1], day2))

	rv := newCallbackReceiver(t)
	data := t.TempDir()
	sched := startScheduler(t, data)
	startExecutor(t, sched, filepath.Join(data, "staging"))
	waitUntil(t, "kallad_executors_connected 1", func() bool { return sched.metric(t, "kallad_executors_connected") == "1" })
	job := writeCarryJob(t, filepath.Join(root, "cluster2"), runs[1], day2)
	job["callback_url"] = rv.base()
	if code, body := sched.submit(t, job); code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	got := completeResult(t, rv, runs[1])
	if !reflect.DeepEqual(got.CarryOver, want.CarryOver) || !reflect.DeepEqual(got.Ageing, want.Ageing) {
		t.Errorf("cluster carry_over %s ageing %s\n  local %s %s", mustJSON(got.CarryOver), mustJSON(got.Ageing), mustJSON(want.CarryOver), mustJSON(want.Ageing))
	}
	sameCarryFiles(t, got, want)
	mode, reason := plannedAs(t, sched, runs[1])
	if mode != "single" || reason != `carry_over partitions only on a primary-key column; "ref" is not one of r's primary keys` {
		t.Errorf("job planned %s (%s)", mode, reason)
	}
}

// Parquet sources, read in place, carry over too, and rules may use the
// lineage columns: the second rule of day 2 takes a wider tolerance for
// items open since an earlier run, so A3 (carried, 30.00) clears against
// 30.40 while A5 (new, 50.00) stays open against 50.40.
func TestCarryOverParquetRules(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	toParquet := func(dir string) {
		for _, name := range []string{"bank", "ledger"} {
			csv := filepath.Join(dir, name+".csv")
			ducktest.Query(t, "COPY (SELECT * FROM read_csv('"+csv+"', types = {'amount': 'DECIMAL(18,2)'})) TO '"+filepath.Join(dir, name+".parquet")+"' (FORMAT parquet)")
		}
	}
	run := func(dir string, d carryDay, rules bool) map[string]any {
		job := writeCarryJob(t, dir, kalla.NewRunID(), d)
		toParquet(dir)
		for i, name := range []string{"bank", "ledger"} {
			withSource(job, i, filepath.Join(dir, name+".parquet"))
		}
		if rules {
			delete(job, "match_sql")
			job["rules"] = []any{
				map[string]any{"name": "exact", "match_sql": carryMatchSQL},
				map[string]any{"name": "old_items", "match_sql": `SELECT l.id AS l_id, r.pid AS r_pid FROM l JOIN r ON r.ref = l.id
					AND abs(r.amount - l.amount) <= 0.50 AND l._kalla_runs_open > 1`},
			}
		}
		return job
	}
	day1 := run(filepath.Join(root, "day1"), carryChainDays[0], false)
	runCarry(t, day1)
	day2 := carryDay{bank: "A3,30.00,2026-02-20\nA5,50.00,2026-03-02\n", ledger: "P2,A2,20.00\nP3,A3,30.40\nP5,A5,50.40\n",
		carry: map[string]any{"from": filepath.Join(root, "day1", "out"), "as_of": "2026-03-02"}}
	job := run(filepath.Join(root, "day2"), day2, true)
	res := runCarry(t, job)
	kallatest.SameRows(t, "matched", ducktest.Rows(t, "SELECT _kalla_rule, l_id, r_pid FROM '"+res.OutputPaths.Matched+"'"),
		[]string{"exact|A2|P2", "old_items|A3|P3"})
	kallatest.SameRows(t, "unmatched_left", lineageRows(t, res.OutputPaths.UnmatchedLeft, "id"), []string{
		"A4|" + day1["run_id"].(string) + "|2026-03-01|2|1", "A5|" + job["run_id"].(string) + "|2026-03-02|1|0",
	})
	want := &kalla.CarryOverCounts{FromRunID: day1["run_id"].(string), AsOf: "2026-03-02",
		Carried: kalla.SideCount{Left: 3, Right: 1}, Cleared: kalla.SideCount{Left: 2}, Replaced: kalla.SideCount{Left: 1}}
	if !reflect.DeepEqual(res.CarryOver, want) {
		t.Errorf("carry_over %s, want %s", mustJSON(res.CarryOver), mustJSON(want))
	}

}

// A Postgres source, streamed into a table, carries over as files do: day
// 2's bank table gets day 1's open items, typed as Postgres gives them
// (NUMERIC(12,2), DATE), and A2 clears against the ledger with day 1 as
// first seen.
func TestCarryOverPostgres(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, "CREATE TABLE bank (id text PRIMARY KEY, amount numeric(12,2), value_date date)")
	db.Exec(t, "CREATE TABLE ledger (pid text PRIMARY KEY, ref text, amount numeric(12,2))")
	db.Exec(t, "INSERT INTO bank VALUES ('A1', 10.00, '2026-03-01'), ('A2', 20.00, '2026-03-01'), ('A3', 30.00, '2026-02-20')")
	db.Exec(t, "INSERT INTO ledger VALUES ('P1', 'A1', 10.00)")
	root := t.TempDir()
	runs := [2]string{kalla.NewRunID(), kalla.NewRunID()}
	pgJob := func(dir, runID string, carry map[string]any) map[string]any {
		job := writeCarryJob(t, dir, runID, carryDay{carry: carry})
		withSource(job, 0, db.TableURI("bank"))
		return withSource(job, 1, db.TableURI("ledger"))
	}
	runCarry(t, pgJob(filepath.Join(root, "day1"), runs[0], map[string]any{"as_of": "2026-03-01"}))
	db.Exec(t, "DELETE FROM bank WHERE id IN ('A1', 'A2')")
	db.Exec(t, "INSERT INTO bank VALUES ('A4', 40.00, '2026-03-02')")
	db.Exec(t, "INSERT INTO ledger VALUES ('P2', 'A2', 20.00)")
	res := runCarry(t, pgJob(filepath.Join(root, "day2"), runs[1], map[string]any{"from": filepath.Join(root, "day1", "out"), "as_of": "2026-03-02", "age_from": "value_date"}))
	kallatest.SameRows(t, "matched", ducktest.Rows(t, "SELECT l_id, r_pid, first_seen_run, runs_open FROM '"+res.OutputPaths.Matched+"'"),
		[]string{"A2|P2|" + runs[0] + "|2"})
	kallatest.SameRows(t, "unmatched_left", ducktest.Rows(t, "SELECT id, amount, value_date, _kalla_first_seen_run, _kalla_runs_open, _kalla_age_days FROM '"+res.OutputPaths.UnmatchedLeft+"'"),
		[]string{"A3|30.00|2026-02-20|" + runs[0] + "|2|10", "A4|40.00|2026-03-02|" + runs[1] + "|1|0"})
}
