package conformance

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// tableLock holds an ACCESS EXCLUSIVE lock on a table, which stops every
// read of it until released: a source that waits on its server, made
// deterministic.
type tableLock struct {
	conn *pgx.Conn
	once sync.Once
}

func lockTable(t *testing.T, db *kallatest.DB, table string) *tableLock {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	l := &tableLock{conn: conn}
	t.Cleanup(func() { l.release(); conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN; LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatalf("lock %s: %v", table, err)
	}
	return l
}

func (l *tableLock) release() {
	l.once.Do(func() { l.conn.Exec(context.Background(), "ROLLBACK") })
}

// twoTables creates the left table (invoices) and right table (payments)
// of the staging tests, and a job matching them.
func twoTables(t *testing.T, db *kallatest.DB) *kalla.Job {
	t.Helper()
	db.Exec(t, `CREATE TABLE inv (id bigint PRIMARY KEY, amount numeric(12,2), note text)`)
	db.Exec(t, `INSERT INTO inv SELECT g, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN '' ELSE 'inv ' || g END
		FROM generate_series(1, 20000) g`)
	db.Exec(t, `CREATE TABLE pay (pid bigint PRIMARY KEY, ref bigint, amount numeric(12,2))`)
	db.Exec(t, `INSERT INTO pay SELECT g, CASE WHEN g % 11 = 0 THEN NULL ELSE g * 2 END, CASE WHEN g % 3 = 0 THEN g * 2.5 + 1 ELSE g * 2.5 END
		FROM generate_series(1, 15000) g`)
	dir := t.TempDir()
	return &kalla.Job{
		MatchSQL:    "SELECT l.id, r.pid, l.amount FROM left_src l JOIN right_src r ON r.ref = l.id AND r.amount = l.amount",
		Sources:     []kalla.SourceSpec{{Alias: "left_src", URI: db.TableURI("inv")}, {Alias: "right_src", URI: db.TableURI("pay")}},
		OutputPath:  filepath.Join(dir, "out"),
		PrimaryKeys: map[string][]string{"left_src": {"id"}, "right_src": {"pid"}},
	}
}

// Two Postgres sources are staged at once: while the left table is locked,
// the right one is read to its end, and the job then finishes with the
// results Postgres computes for the same SQL, and progress that adds up.
func TestRowSourcesStageAtOnce(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	job := twoTables(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var lock *tableLock
	var reports []kalla.Progress
	r := newRunner(t)
	rightStaged := false
	r.StageDone = func(st kalla.StageTime) {
		if st.Stage == kalla.StageStaging && st.Source == "right_src" && lock != nil {
			rightStaged = true
			lock.release()
		}
	}
	progress := func(p kalla.Progress) {
		if p.Stage == kalla.StageStaging && lock == nil {
			// Staging begins: nothing of the left table is read yet.
			lock = lockTable(t, db, "inv")
			time.AfterFunc(45*time.Second, cancel)
		}
		reports = append(reports, p)
	}
	res, err := r.Run(ctx, job, progress)
	if !rightStaged {
		t.Fatalf("right_src was not staged while left_src waited on its lock (run: %v)", err)
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	if res.LeftCount != 20000 || res.RightCount != 15000 {
		t.Errorf("counts %+v, want 20000 left and 15000 right", res)
	}
	var last int64
	final := false
	for _, p := range reports {
		if p.Stage != kalla.StageStaging {
			continue
		}
		if p.RowsRead < last {
			t.Errorf("rows read went back from %d to %d", last, p.RowsRead)
		}
		last = p.RowsRead
		final = p.Progress == 1
	}
	if !final || last != 35000 {
		t.Errorf("last staging report: progress final %v, %d rows read; want final with 35000", final, last)
	}

	matched := ducktest.Rows(t, "SELECT id, pid, amount FROM "+parquetOf(res.OutputPaths.Matched))
	wantMatched := pgRows(t, db.Pool, "SELECT l.id::text, r.pid::text, l.amount::text FROM inv l JOIN pay r ON r.ref = l.id AND r.amount = l.amount")
	kallatest.SameRows(t, "matched", matched, wantMatched)
	left := ducktest.Rows(t, "SELECT id, amount, note FROM "+parquetOf(res.OutputPaths.UnmatchedLeft))
	wantLeft := pgRows(t, db.Pool, "SELECT id::text, amount::text, note FROM inv l WHERE NOT EXISTS (SELECT 1 FROM pay r WHERE r.ref = l.id AND r.amount = l.amount)")
	kallatest.SameRows(t, "unmatched left", left, wantLeft)
	right := ducktest.Rows(t, "SELECT pid, ref, amount FROM "+parquetOf(res.OutputPaths.UnmatchedRight))
	wantRight := pgRows(t, db.Pool, "SELECT pid::text, ref::text, amount::text FROM pay r WHERE NOT EXISTS (SELECT 1 FROM inv l WHERE r.ref = l.id AND r.amount = l.amount)")
	kallatest.SameRows(t, "unmatched right", right, wantRight)
}

// When one of two sources staged at once fails, the other load is
// cancelled (here it waits on a lock, and would wait for ever) and the
// error names the source that failed.
func TestRowSourceErrorStopsTheOther(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	job := twoTables(t, db)
	db.Exec(t, `ALTER TABLE pay ADD COLUMN due date`)
	db.Exec(t, `UPDATE pay SET due = 'infinity' WHERE pid = 14000`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lock *tableLock
	progress := func(p kalla.Progress) {
		if p.Stage == kalla.StageStaging && lock == nil {
			lock = lockTable(t, db, "inv")
			time.AfterFunc(45*time.Second, cancel)
		}
	}
	_, err := newRunner(t).Run(ctx, job, progress)
	if err == nil {
		t.Fatal("run succeeded, want the infinity date of right_src reported")
	}
	if errors.Is(err, kalla.ErrCancelled) || kalla.ErrorStage(err) != kalla.StageStaging {
		t.Fatalf("got %v (stage %s): want the right source's error during staging, before the timeout", err, kalla.ErrorStage(err))
	}
	if msg := err.Error(); !strings.Contains(msg, `read source "right_src"`) || !strings.Contains(msg, "infinity") {
		t.Errorf("error %q: want it to name right_src and the infinity date", msg)
	}
}
