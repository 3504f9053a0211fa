package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// carryMatchSQL is day 1's and day 2's rule, valid in DuckDB and Postgres.
const carryMatchSQL = "SELECT l.id, r.lid FROM bank l JOIN ledger r ON l.ref = r.ref AND l.amount = r.amount"

// seedCarryDays fills two days of bank lines and ledger entries. Day 1
// leaves bank 3..8 and ledger L9, L10 open; on day 2 bank 3 is sent again
// corrected (replaced, still open: its ledger entry has the old amount),
// bank 4 is sent again unchanged and its entry arrives (replaced and
// cleared), bank 5's entry arrives (a carried row cleared), bank 10
// arrives for the carried ledger L10, bank 6, 7 (NULL ref), 8 and ledger
// L9 stay open, and bank 11 and ledger L12 are new orphans.
func seedCarryDays(t *testing.T, db *kallatest.DB) {
	for _, day := range []string{"1", "2"} {
		db.Exec(t, fmt.Sprintf(`CREATE TABLE bank%s (id bigint PRIMARY KEY, ref text, amount numeric(12,2), note text)`, day))
		db.Exec(t, fmt.Sprintf(`CREATE TABLE ledger%s (lid bigint PRIMARY KEY, ref text, amount numeric(12,2))`, day))
	}
	db.Exec(t, `INSERT INTO bank1 VALUES (1, 'R1', 100.00, 'a'), (2, 'R2', 200.00, 'b'), (3, 'R3', 300.00, 'c'),
		(4, 'R4', 400.00, 'd'), (5, 'R5', 500.00, 'e'), (6, 'R6', 600.00, ' six '), (7, NULL, 700.00, NULL),
		(8, 'r8 ', 800.01, E'tab\tand\nnewline')`)
	db.Exec(t, `INSERT INTO ledger1 VALUES (1, 'R1', 100.00), (2, 'R2', 200.00), (9, 'R9', 900.00), (10, 'R10', 1000.00)`)
	db.Exec(t, `INSERT INTO bank2 VALUES (3, 'R3', 300.50, 'c corrected'), (4, 'R4', 400.00, 'd again'),
		(10, 'R10', 1000.00, 'j'), (11, 'R11', 1100.00, '')`)
	db.Exec(t, `INSERT INTO ledger2 VALUES (3, 'R3', 300.00), (4, 'R4', 400.00), (5, 'R5', 500.00), (12, 'R12', 12.00)`)
}

// pgCarry is the carry-over of day 1 into day 2 written in Postgres SQL,
// independently of Kalla: each side's day-2 rows are today's rows (with
// the lineage of their key when day 1 left it open) and day 1's open rows
// whose key today's source does not send again; m2 is day 2's match.
func pgCarry(run1, run2 string) string {
	side := func(name, key, cols string) string {
		return fmt.Sprintf(`open1_%[1]s AS (SELECT %[3]s, '%[4]s'::text AS fsr, DATE '%[6]s' AS fsa, 1 AS ro FROM %[1]s1 o
			WHERE NOT EXISTS (SELECT 1 FROM m1 WHERE m1.%[2]s = o.%[2]s)),
		%[1]s AS (SELECT %[3]s, coalesce(c.fsr, '%[5]s') AS fsr, coalesce(c.fsa, DATE '%[7]s') AS fsa, coalesce(c.ro, 0) + 1 AS ro
			FROM %[1]s2 o LEFT JOIN (SELECT %[2]s, fsr, fsa, ro FROM open1_%[1]s) c ON c.%[2]s = o.%[2]s
			UNION ALL SELECT %[3]s, o.fsr, o.fsa, o.ro + 1 FROM open1_%[1]s o WHERE NOT EXISTS (SELECT 1 FROM %[1]s2 t WHERE t.%[2]s = o.%[2]s))`,
			name, key, cols, run1, run2, carriedDay1, carriedDay2)
	}
	return fmt.Sprintf(`WITH m1 AS (SELECT l.id, r.lid FROM bank1 l JOIN ledger1 r ON l.ref = r.ref AND l.amount = r.amount),
		%s, %s,
		m2 AS (SELECT l.id, r.lid FROM bank l JOIN ledger r ON l.ref = r.ref AND l.amount = r.amount)`,
		side("bank", "id", "o.id, o.ref, o.amount, o.note"), side("ledger", "lid", "o.lid, o.ref, o.amount"))
}

// Day 2 of a carry-over chain, read from Postgres, equals row for row what
// Postgres computes for the same carry-over: the matched pairs, the open
// items of both sides with their values and lineage, and the summary's
// carried, replaced and cleared counts.
func TestCarriedEqualsPostgres(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	seedCarryDays(t, db)
	r := newRunner(t)
	dir := t.TempDir()
	run := func(day, asOf, from string) *kalla.Result {
		t.Helper()
		job := &kalla.Job{
			MatchSQL:    carryMatchSQL,
			Sources:     []kalla.SourceSpec{{Alias: "bank", URI: db.TableURI("bank" + day)}, {Alias: "ledger", URI: db.TableURI("ledger" + day)}},
			OutputPath:  filepath.Join(dir, "day"+day),
			PrimaryKeys: map[string][]string{"bank": {"id"}, "ledger": {"lid"}},
			CarryOver:   &kalla.CarryOver{From: from, AsOf: asOf},
		}
		res, err := r.Run(context.Background(), job, nil)
		if err != nil {
			t.Fatalf("day %s: %v", day, err)
		}
		return res
	}
	day1 := run("1", carriedDay1, "")
	day2 := run("2", carriedDay2, filepath.Join(dir, "day1"))

	with := pgCarry(day1.RunID, day2.RunID)
	lineage := strings.Join(kalla.LineageColumns, ", ")
	for _, c := range []struct{ what, got, want string }{
		{"matched", "SELECT id, lid FROM " + parquetOf(day2.OutputPaths.Matched),
			with + " SELECT id::text, lid::text FROM m2"},
		{"unmatched bank", "SELECT id, ref, amount, note, " + lineage + " FROM " + parquetOf(day2.OutputPaths.UnmatchedLeft),
			with + fmt.Sprintf(` SELECT id::text, ref, amount::text, note, fsr, fsa::text, ro::text, (DATE '%s' - fsa)::text
				FROM bank b WHERE NOT EXISTS (SELECT 1 FROM m2 WHERE m2.id = b.id)`, carriedDay2)},
		{"unmatched ledger", "SELECT lid, ref, amount, " + lineage + " FROM " + parquetOf(day2.OutputPaths.UnmatchedRight),
			with + fmt.Sprintf(` SELECT lid::text, ref, amount::text, fsr, fsa::text, ro::text, (DATE '%s' - fsa)::text
				FROM ledger b WHERE NOT EXISTS (SELECT 1 FROM m2 WHERE m2.lid = b.lid)`, carriedDay2)},
		{"carried, replaced, cleared", fmt.Sprintf("SELECT %d, %d, %d, %d, %d, %d",
			day2.CarryOver.Carried.Left, day2.CarryOver.Replaced.Left, day2.CarryOver.Cleared.Left,
			day2.CarryOver.Carried.Right, day2.CarryOver.Replaced.Right, day2.CarryOver.Cleared.Right),
			with + ` SELECT (SELECT count(*) FROM open1_bank)::text, (SELECT count(*) FROM open1_bank o JOIN bank2 USING (id))::text,
				(SELECT count(*) FROM bank JOIN m2 USING (id) WHERE ro > 1)::text,
				(SELECT count(*) FROM open1_ledger)::text, (SELECT count(*) FROM open1_ledger o JOIN ledger2 USING (lid))::text,
				(SELECT count(*) FROM ledger JOIN m2 USING (lid) WHERE ro > 1)::text`},
	} {
		want := pgRows(t, db.Pool, c.want)
		kallatest.SameRows(t, c.what, ducktest.Rows(t, c.got), want)
	}
	// The data set has each case it is named for.
	cases := pgRows(t, db.Pool, with+` SELECT
		(SELECT count(*) FROM bank b JOIN bank2 USING (id) WHERE b.ro > 1 AND b.id NOT IN (SELECT id FROM m2))::text,
		(SELECT count(*) FROM bank b JOIN bank2 USING (id) WHERE b.ro > 1 AND b.id IN (SELECT id FROM m2))::text,
		(SELECT count(*) FROM bank b WHERE b.id NOT IN (SELECT id FROM bank2) AND b.id IN (SELECT id FROM m2))::text,
		(SELECT count(*) FROM bank b WHERE b.id NOT IN (SELECT id FROM bank2) AND b.id NOT IN (SELECT id FROM m2))::text`)
	if len(cases) != 1 || strings.Contains(cases[0], "|0") || strings.HasPrefix(cases[0], "0|") {
		t.Errorf("replaced open, replaced cleared, carried cleared, carried open: %v; want each", cases)
	}
}
