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
	"github.com/kalla-dev/kalla/file"
)

// With the sandbox off, a session's database still refuses every escape:
// files outside the job, another session's tables, extensions, settings,
// writes elsewhere and attaching databases.
func TestLockdownHoldsWithoutSandbox(t *testing.T) {
	t.Parallel()
	eng, err := duckdb.Open(duckdb.Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	duckdb.DisableSandbox(eng)
	ctx := context.Background()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("password\nhunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "mine.csv")
	if err := os.WriteFile(mine, []byte("invoice_id,amount\n1,1.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Session a holds a job's table; session b is another job.
	a := newSession(t, eng, mine)
	b := newSession(t, eng, mine)
	if err := a.Exec(ctx, "CREATE TABLE kalla_job_1.staged AS SELECT 'row of job a' AS v"); err != nil {
		t.Fatalf("session a cannot use its own schema: %v", err)
	}
	if err := b.Exec(ctx, "CREATE TABLE mine AS SELECT * FROM read_csv("+quote(mine)+")"); err != nil {
		t.Fatalf("session b cannot read its own source: %v", err)
	}
	outside := filepath.Join(dir, "written")
	cases := []struct{ sql, says string }{
		{"SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"},
		{"SELECT * FROM read_csv(" + quote(secret) + ")", "disabled by configuration"},
		{"SELECT * FROM read_blob(" + quote(dir+"/*") + ")", "disabled by configuration"},
		{"SELECT * FROM glob('/*')", "disabled by configuration"},
		{"SELECT * FROM kalla_job_1.staged", "kalla_job_1"},
		{"SELECT * FROM duckdb_tables() WHERE schema_name = 'kalla_job_1'", ""},
		{"INSTALL httpfs", "disabled by configuration"},
		{"LOAD httpfs", "disabled"},
		{"SET enable_external_access = true", "locked"},
		{"SET allowed_directories = ['/']", "locked"},
		{"RESET lock_configuration", "locked"},
		{"SET autoload_known_extensions = true", "locked"},
		{"SET temp_directory = '/tmp'", "locked"},
		{"COPY (SELECT 1) TO " + quote(outside+".csv"), "disabled by configuration"},
		{"COPY mine TO " + quote(outside+".parquet") + " (FORMAT parquet)", "disabled by configuration"},
		{"ATTACH " + quote(outside+".db"), "disabled by configuration"},
		{"EXPORT DATABASE " + quote(outside), "disabled by configuration"},
	}
	for _, tc := range cases {
		err := b.Exec(ctx, tc.sql)
		if tc.says == "" {
			// Listing the catalog works, but shows only session b's own.
			var n int
			if err := b.QueryRow(ctx, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'kalla_job_1'", &n); err != nil || n != 0 {
				t.Errorf("session b sees session a's tables: %d (%v)", n, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want a refusal saying %q", tc.sql, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the refusal leaks the file: %v", tc.sql, err)
		}
	}
	// A folder allowed (a glob source's) gives no way up out of it.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := eng.NewSession(ctx, sub+string(filepath.Separator))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{sub + "/../secret.csv", sub + "/../*.csv"} {
		err := c.(*duckdb.Session).Exec(ctx, "SELECT * FROM read_csv("+quote(p)+")")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("read %s from an allowed folder: %v", p, err)
		}
	}
	for _, p := range []string{outside + ".csv", outside + ".parquet", outside + ".db", outside} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written", p)
		}
	}
	// Session a still reads its own table: the refusals were b's.
	var v string
	if err := a.QueryRow(ctx, "SELECT v FROM kalla_job_1.staged", &v); err != nil || v != "row of job a" {
		t.Errorf("session a lost its table: %q, %v", v, err)
	}
}

// A whole job whose match_sql reaches outside, run with the sandbox off,
// fails on the lockdown and writes nothing outside its output.
func TestLockdownStopsHostileJobWithoutSandbox(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	duckdb.DisableSandbox(b.runner.Engine.(*duckdb.Engine))
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n")
	stolen := filepath.Join(t.TempDir(), "stolen.csv")
	for _, q := range []string{
		"SELECT 1 AS invoice_id, 1 AS payment_id, content FROM read_text('/etc/passwd')",
		"SELECT 1 AS invoice_id, 1 AS payment_id; COPY (SELECT * FROM left_src) TO " + quote(stolen),
		"SELECT 1 AS invoice_id, 1 AS payment_id; SET lock_configuration = false",
		"SELECT 1 AS invoice_id, 1 AS payment_id; INSTALL httpfs; LOAD httpfs",
	} {
		job := b.job(q, inv, pay, []string{"invoice_id"}, []string{"payment_id"})
		_, err := b.runner.Run(context.Background(), job, nil)
		if err == nil {
			t.Errorf("%s: ran", q)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "disabled by configuration") && !strings.Contains(msg, "locked") && !strings.Contains(msg, "disabled") {
			t.Errorf("%s: failed, but not on the lockdown: %v", q, err)
		}
		if strings.Contains(err.Error(), "root:") {
			t.Errorf("%s: the error leaks /etc/passwd: %v", q, err)
		}
	}
	if _, err := os.Stat(stolen); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was written", stolen)
	}
}

// newSession starts a session allowed to read path.
func newSession(t *testing.T, eng *duckdb.Engine, path string) *duckdb.Session {
	t.Helper()
	s, err := eng.NewSession(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	src, err := file.OpenSource(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attach(context.Background(), "left_src", src, kalla.Whole, nil); err != nil {
		t.Fatal(err)
	}
	return s.(*duckdb.Session)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var _ kalla.Session = (*duckdb.Session)(nil)

// KALLA_MEMORY_LIMIT=75% is a share of the machine's RAM, turned into the
// size DuckDB needs; the limit is divided among the sessions that run at
// once; a malformed limit is an error naming the flag.
func TestMemoryLimitPercentOfRAM(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{MemoryLimit: "50%", Threads: 2})
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n")
	if res := b.run(t, b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"})); res.MatchedCount != 1 {
		t.Fatalf("matched %d, want 1", res.MatchedCount)
	}
	s, err := b.runner.Engine.NewSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var limit string
	if err := s.(*duckdb.Session).QueryRow(context.Background(), "SELECT current_setting('memory_limit')", &limit); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(limit, "GiB") && !strings.HasSuffix(limit, "MiB") {
		t.Errorf("memory_limit is %q, want a size", limit)
	}
	// The limit is shared by the sessions that run at once.
	for _, tc := range []struct {
		limit    string
		sessions int
		want     string
	}{
		{"1GB", 4, "238.4 MiB"},
		{"1 GiB", 2, "512.0 MiB"},
		{"512MB", 1, "488.2 MiB"},
	} {
		eng, err := duckdb.Open(duckdb.Config{MemoryLimit: tc.limit, MaxSessions: tc.sessions, Threads: 1})
		if err != nil {
			t.Fatalf("%s over %d sessions: %v", tc.limit, tc.sessions, err)
		}
		s, err := eng.NewSession(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.(*duckdb.Session).QueryRow(context.Background(), "SELECT current_setting('memory_limit')", &limit); err != nil {
			t.Fatal(err)
		}
		s.Close()
		eng.Close()
		if limit != tc.want {
			t.Errorf("%s over %d sessions: each has %s, want %s", tc.limit, tc.sessions, limit, tc.want)
		}
	}
	for _, bad := range []struct {
		limit    string
		sessions int
	}{{"abc%", 1}, {"150%", 1}, {"0%", 1}, {"4 parsecs", 2}, {"lots", 1}} {
		_, err := duckdb.Open(duckdb.Config{MemoryLimit: bad.limit, MaxSessions: bad.sessions})
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != "memory-limit" || !strings.Contains(v.Message, bad.limit) {
			t.Errorf("memory limit %q: got %v, want an error on memory-limit naming it", bad.limit, err)
		}
	}
}

// The session writes results into its own folder and moves them into the
// output folder, which it may not write to: across file systems (a
// --temp-dir on tmpfs) the move is a copy, and the results are the same.
func TestResultsMoveAcrossFileSystems(t *testing.T) {
	t.Parallel()
	shm, err := os.MkdirTemp("/dev/shm", "kalla-test-")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	b := setup(t, duckdb.Config{TempDir: shm, Threads: 2})
	inv := b.write(t, "inv.csv", "invoice_id,amount\n1,1.00\n2,2.00\n")
	pay := b.write(t, "pay.csv", "payment_id,invoice_ref,amount\n1,1,1.00\n2,9,2.00\n")
	res := b.run(t, b.job(toleranceSQL, inv, pay, []string{"invoice_id"}, []string{"payment_id"}))
	if res.MatchedCount != 1 || res.UnmatchedLeftCount != 1 || res.UnmatchedRightCount != 1 {
		t.Fatalf("counts %+v, want 1 matched and 1 unmatched on each side", res)
	}
	if got := parquet(t, res.OutputPaths.UnmatchedRight, "payment_id"); len(got) != 1 || got[0] != "2" {
		t.Errorf("unmatched_right %v, want payment 2", got)
	}
	entries, _ := os.ReadDir(shm)
	for _, e := range entries {
		left, _ := filepath.Glob(filepath.Join(shm, e.Name(), "job-*"))
		if len(left) > 0 {
			t.Errorf("session folders left behind: %v", left)
		}
	}
}
