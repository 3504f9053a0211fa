package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	kallahttp "github.com/kalla-dev/kalla/http"
)

// bindRules is sharedKeyRules with rule i changed by edit (a deep copy).
func bindRules(t *testing.T, edit func(rules []map[string]any)) []any {
	t.Helper()
	var rules []map[string]any
	if err := json.Unmarshal(mustJSONBytes(t, sharedKeyRules), &rules); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(rules)
	}
	out := make([]any, len(rules))
	for i, r := range rules {
		out[i] = r
	}
	return out
}

// A job that a run could not even start (an error only the sources'
// columns reveal) is refused at submission with 400 naming the field, for
// Parquet, CSV and Postgres sources, and nothing is stored. The same jobs,
// corrected, are accepted and checked (no checks_deferred).
func TestSchedulerSubmitBindRefusals(t *testing.T) {
	t.Parallel()
	db := seedRules(t)
	parquetL, parquetR := writeRulesFiles(t, t.TempDir(), "parquet")
	csvL, csvR := writeRulesFiles(t, t.TempDir(), "csv")
	pgL, pgR := db.TableURI("invoices"), db.TableURI("payments")
	sched := startScheduler(t, t.TempDir())

	cases := []struct {
		name  string
		field string
		edit  func(job map[string]any)
	}{
		{"order_by not returned", "rules[1].exclusive.order_by[0]", func(job map[string]any) {
			rule(job, 1)["exclusive"].(map[string]any)["order_by"] = []any{"amount_gap", "day_gap"}
		}},
		{"result without the left key", "rules[0].match_sql", func(job map[string]any) {
			rule(job, 0)["match_sql"] = "SELECT r.payment_id, l.amount FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id"
		}},
		{"unknown column", "rules[2].match_sql", func(job map[string]any) {
			rule(job, 2)["match_sql"] = "SELECT l.invoice_id, r.payment_id, r.paid_at AS day_gap FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id"
		}},
		{"incompatible types across rules", "rules[2].match_sql", func(job map[string]any) {
			rule(job, 2)["match_sql"] = "SELECT l.invoice_id, r.payment_id, CAST(r.paid_on AS VARCHAR) AS day_gap FROM left_src l JOIN right_src r ON r.customer_id = l.customer_id"
		}},
		{"reserved prefix", "rules[0].match_sql", func(job map[string]any) {
			rule(job, 0)["match_sql"] = "SELECT l.invoice_id, r.payment_id, l.amount AS _kalla_amount FROM left_src l JOIN right_src r ON r.invoice_ref = l.invoice_ref"
		}},
		{"cannot be explained", "rules[0].match_sql", func(job map[string]any) {
			rule(job, 0)["explain"] = true
			rule(job, 0)["match_sql"] = "SELECT l.invoice_id, r.payment_id FROM left_src l JOIN right_src r ON r.amount < l.amount AND r.paid_on < l.due_on"
		}},
		{"filter on a missing column", "sources[0].filters[0].column", func(job map[string]any) {
			source(job, 0)["filters"] = []any{map[string]any{"column": "customer", "op": "eq", "value": 7}}
		}},
		{"filter value of the wrong type", "sources[1].filters[0].value", func(job map[string]any) {
			source(job, 1)["filters"] = []any{map[string]any{"column": "paid_on", "op": "gte", "value": "last tuesday"}}
		}},
		{"primary key not in the source", "primary_keys.right_src", func(job map[string]any) {
			job["primary_keys"].(map[string]any)["right_src"] = []any{"payment_no"}
		}},
	}
	for _, kind := range []struct{ name, left, right string }{
		{"parquet", parquetL, parquetR}, {"csv", csvL, csvR}, {"postgres", pgL, pgR},
	} {
		for _, c := range cases {
			job := rulesJob(t, bindRules(t, nil), kind.left, kind.right, "")
			c.edit(job)
			code, body := sched.submit(t, job)
			var e kallahttp.ErrorBody
			if err := json.Unmarshal(body, &e); err != nil || code != 400 || e.Code != "invalid_job" || e.Field != c.field {
				t.Errorf("%s, %s: %d %s, want 400 on %s", kind.name, c.name, code, body, c.field)
			}
		}
		if code, body := sched.submit(t, rulesJob(t, bindRules(t, nil), kind.left, kind.right, "")); code != 202 || strings.Contains(string(body), "checks_deferred") {
			t.Errorf("%s, the valid job: %d %s, want 202 checked", kind.name, code, body)
		}
	}
	// A source whose table does not exist names its uri.
	code, body := sched.submit(t, rulesJob(t, bindRules(t, nil), pgL, db.TableURI("no_such_table"), ""))
	var e kallahttp.ErrorBody
	if json.Unmarshal(body, &e) != nil || code != 400 || e.Field != "sources[1].uri" {
		t.Errorf("a missing table: %d %s, want 400 on sources[1].uri", code, body)
	}
	if n := sched.listed(t); n != 3 {
		t.Errorf("GET /api/jobs lists %d runs, want the 3 valid ones", n)
	}
}

func rule(job map[string]any, i int) map[string]any { return job["rules"].([]any)[i].(map[string]any) }
func source(job map[string]any, i int) map[string]any {
	return job["sources"].([]any)[i].(map[string]any)
}

// A CSV file larger than the sample submission typing reads is typed from
// its head: a column whose late values are not numbers reads as a number
// there, and a rule comparing it with text fails to bind on the sample.
// The submission checks such a failure on the whole file: the job is
// accepted and runs (the run types the column VARCHAR), while a job
// really at fault is still refused.
func TestSchedulerSubmitBindCSVSample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	left := filepath.Join(dir, "left.csv")
	var b strings.Builder
	b.WriteString("id,ref,amount\n")
	const rows = 300_000 // about 7 MB: well beyond the 1 MiB sample
	for i := range rows {
		ref := fmt.Sprint(1000000 + i)
		if i == rows-1 {
			ref = "R-LATE"
		}
		fmt.Fprintf(&b, "%d,%s,%d.25\n", i, ref, i%1000)
	}
	if b.Len() <= 1<<20 {
		t.Fatalf("the file is %d bytes, not beyond the sample", b.Len())
	}
	if err := os.WriteFile(left, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	right := filepath.Join(dir, "right.csv")
	if err := os.WriteFile(right, []byte("pid,code\n1,R-LATE\n2,1000007\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rv := newCallbackReceiver(t)
	// Typing the whole file takes seconds on a busy machine: the check
	// gets the time it needs, which is not what this test is about.
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--submit-check-timeout", "2m"})
	job := map[string]any{
		"run_id":       kalla.NewRunID(),
		"match_sql":    "SELECT l.id, r.pid FROM left_src l JOIN right_src r ON r.code = l.ref",
		"sources":      []any{map[string]any{"alias": "left_src", "uri": left}, map[string]any{"alias": "right_src", "uri": right}},
		"output_path":  filepath.Join(dir, "out"),
		"primary_keys": map[string]any{"left_src": []any{"id"}, "right_src": []any{"pid"}},
		"callback_url": rv.base(),
	}
	code, body := sched.submit(t, job)
	if code != 202 || strings.Contains(string(body), "checks_deferred") {
		t.Fatalf("submit: %d %s, want 202 checked", code, body)
	}
	var res kalla.Result
	if err := json.Unmarshal(rv.wait(t, "complete", job["run_id"].(string)), &res); err != nil {
		t.Fatal(err)
	}
	if res.MatchedCount != 2 || res.LeftCount != rows {
		t.Errorf("result %+v, want 2 matched of %d", res, rows)
	}

	bad := map[string]any{}
	for k, v := range job {
		bad[k] = v
	}
	bad["run_id"] = kalla.NewRunID()
	bad["primary_keys"] = map[string]any{"left_src": []any{"ident"}, "right_src": []any{"pid"}}
	code, body = sched.submit(t, bad)
	var e kallahttp.ErrorBody
	if json.Unmarshal(body, &e) != nil || code != 400 || e.Field != "primary_keys.left_src" {
		t.Errorf("a missing key on the large file: %d %s, want 400 on primary_keys.left_src", code, body)
	}
	bad["run_id"], bad["primary_keys"] = kalla.NewRunID(), job["primary_keys"]
	bad["match_sql"] = "SELECT l.id, r.pid FROM left_src l JOIN right_src r ON r.code = l.ref AND r.pid = l.nope"
	code, body = sched.submit(t, bad)
	if json.Unmarshal(body, &e) != nil || code != 400 || e.Field != "match_sql" {
		t.Errorf("an unknown column on the large file: %d %s, want 400 on match_sql", code, body)
	}
}

// silentServer accepts TCP connections and never answers: a database that
// hangs. It returns its address; connections are closed at the end of the
// test.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A source that refuses connections, or accepts them and never answers,
// does not stop the scheduler accepting jobs: the job is accepted
// unchecked within --submit-check-timeout, the answer says why (without
// the password), and the run checks it again and fails in stage
// validating with the cause.
func TestSchedulerSubmitBindUnreachableSource(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pw-42"
	rv := newCallbackReceiver(t)
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--submit-check-timeout", "1s"})
	examples := examplesDir(t)
	for _, c := range []struct {
		name, addr, why, runErr string
	}{
		{"refused", fmt.Sprintf("127.0.0.1:%d", closedPort(t)), "connection refused", "connection refused"},
		{"silent", silentServer(t), "could not be read within 1s", "timed out"},
	} {
		uri := "postgres://kalla:" + password + "@" + c.addr + "/db?table=payments&connect_timeout=2&sslmode=disable"
		job := map[string]any{
			"run_id":       kalla.NewRunID(),
			"match_sql":    "SELECT l.invoice_id, r.payment_id FROM left_src l JOIN right_src r ON r.invoice_ref = l.invoice_id",
			"sources":      []any{map[string]any{"alias": "left_src", "uri": filepath.Join(examples, "invoices.csv")}, map[string]any{"alias": "right_src", "uri": uri}},
			"output_path":  t.TempDir(),
			"primary_keys": map[string]any{"left_src": []any{"invoice_id"}, "right_src": []any{"payment_id"}},
			"callback_url": rv.base(),
		}
		code, body := sched.submit(t, job)
		var a kallahttp.Accepted
		if err := json.Unmarshal(body, &a); err != nil || code != 202 || !strings.Contains(a.ChecksDeferred, c.why) {
			t.Errorf("%s: %d %s, want 202 with checks_deferred saying %q", c.name, code, body, c.why)
		}
		if strings.Contains(string(body), password) || strings.Contains(sched.logs(), password) {
			t.Errorf("%s: the password leaked: %s", c.name, body)
		}
		var rep kalla.ErrorReport
		if err := json.Unmarshal(rv.wait(t, "error", job["run_id"].(string)), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Stage != kalla.StageStaging && rep.Stage != kalla.StageValidating || !strings.Contains(rep.Error, c.runErr) {
			t.Errorf("%s: the run failed with %+v", c.name, rep)
		}
	}
}
