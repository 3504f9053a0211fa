package conformance

import (
	"context"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// A Postgres table is staged through binary COPY decoded into DuckDB's data
// chunks (postgres/columncopy.go, duckdb/chunkwriter.go): its values arrive
// exactly: text byte for byte (NULL apart from the empty string, quotes,
// commas, line ends, leading zeros, spaces, a 3 MB value), money exact,
// instants to the microsecond, odd column names quoted.
func TestPostgresStagingKeepsValues(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE plain (
		id bigint PRIMARY KEY, amount numeric(12,2), wide numeric(38,10), due date,
		ts timestamp, ts_tz timestamptz, ref uuid, paid boolean, note text, code char(5), "it's a ""label""" varchar(20),
		small int2, medium int4)`)
	db.Exec(t, `INSERT INTO plain VALUES
		(1, -1234567890.12, 1234567890123456789012345678.0123456789, '2026-02-28',
		 '2026-03-01 12:34:56.789012', '2026-03-01 12:34:56.789012+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true,
		 E'  spaces, "quotes"\nnewline\r\nCRLF, ünïcødé ✓  ', 'ab', '007', -32768, 2147483647),
		(2, 0.00, 0, '0001-01-01', '1969-12-31 23:59:59.999999', '1999-12-31 23:59:59.5-01', '00000000-0000-0000-0000-000000000000', false,
		 '', '     ', '', 32767, -2147483648),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 0.01, -0.0000000001, '9999-12-31', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', 'ffffffff-ffff-ffff-ffff-ffffffffffff', true,
		 E'\\.', '"', E'back\\slash', 0, 0),
		(5, 99.90, 1, '2024-02-29', '2024-02-29 00:00:00.000001', '2024-02-29 23:59:59.999999-12:30', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', NULL,
		 'NULL', ',', E'tab\there', 1, 1)`)
	db.Exec(t, `INSERT INTO plain (id, note, amount) SELECT g, 'row ' || g, g / 100.0 FROM generate_series(10, 30000) g`)
	// A value of 3 MB.
	db.Exec(t, `INSERT INTO plain (id, note) VALUES (6, repeat(E'ab"c,\n', 500000))`)
	res, err := newRunner(t).Run(context.Background(), matchNothing(t, db.TableURI("plain")), nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.UnmatchedLeftCount != 30000-9+6 {
		t.Fatalf("counts: %+v", res)
	}
	out := parquetOf(res.OutputPaths.UnmatchedLeft)
	gotTypes := ducktest.Rows(t, "SELECT typeof(COLUMNS(*)) FROM "+out+" LIMIT 1")
	kallatest.SameRows(t, "types", gotTypes, []string{"BIGINT|DECIMAL(12,2)|DECIMAL(38,10)|DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE|UUID|BOOLEAN|VARCHAR|VARCHAR|VARCHAR|SMALLINT|INTEGER"})
	got := ducktest.Rows(t, `SELECT id, amount, wide, due, strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), epoch_us(ts_tz), ref, paid,
		CASE WHEN note IS NULL THEN 'null' ELSE 'text:' || note END, code, "it's a ""label""", small, medium FROM `+out)
	want := pgRows(t, db.Pool, `SELECT id::text, amount::text, wide::text, due::text, to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US'),
		(extract(epoch from ts_tz) * 1000000)::bigint::text, ref::text, paid::text,
		CASE WHEN note IS NULL THEN 'null' ELSE 'text:' || note END, rpad(code::text, 5), "it's a ""label""", small::text, medium::text FROM plain`)
	kallatest.SameRows(t, "values", got, want)
}

// An infinite date or timestamp fails the job, naming the column.
func TestPostgresStagingRefusesInfinity(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE forever (id bigint, d date, ts timestamptz)`)
	db.Exec(t, `INSERT INTO forever SELECT g, '2026-01-01', now() FROM generate_series(1, 1000) g`)
	for _, c := range []struct{ col, value string }{{"d", "infinity"}, {"ts", "-infinity"}} {
		db.Exec(t, `UPDATE forever SET `+c.col+` = '`+c.value+`' WHERE id = 500`)
		_, err := newRunner(t).Run(context.Background(), matchNothing(t, db.TableURI("forever")), nil)
		if err == nil || !strings.Contains(err.Error(), `column "`+c.col+`"`) || !strings.Contains(err.Error(), "infinity") {
			t.Errorf("%s %s: got %v, want an error naming the column and infinity", c.col, c.value, err)
		}
		if kalla.ErrorStage(err) != kalla.StageStaging {
			t.Errorf("%s: stage %s, want staging", c.col, kalla.ErrorStage(err))
		}
		db.Exec(t, `UPDATE forever SET d = '2026-01-01', ts = now()`)
	}
}

// Dates and timestamps before Christ ("0044-03-15 BC" in Postgres' text)
// arrive exactly.
func TestPostgresStagingKeepsBCDates(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE ancient (id bigint PRIMARY KEY, d date, ts timestamp, ts_tz timestamptz, note text)`)
	db.Exec(t, `INSERT INTO ancient SELECT g, date '2026-01-01' - g, timestamp '2026-01-01' - g * interval '1 hour', now(), 'n' || g
		FROM generate_series(1, 20000) g`)
	db.Exec(t, `INSERT INTO ancient VALUES (-10, '0044-03-15 BC', '0044-03-15 10:00:00.5 BC', '4713-01-01 00:00:00+00 BC', ''),
		(-20, '0001-01-01 BC', '0001-12-31 23:59:59.999999 BC', '0001-01-01 00:00:00+00', NULL)`)
	res, err := newRunner(t).Run(context.Background(), matchNothing(t, db.TableURI("ancient")), nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.UnmatchedLeftCount != 20002 || res.LeftCount != 20002 {
		t.Fatalf("counts: %+v", res)
	}
	got := ducktest.Rows(t, `SELECT id, d - DATE '2000-01-01', epoch_us(ts), epoch_us(ts_tz), coalesce('text:' || note, 'null') FROM `+parquetOf(res.OutputPaths.UnmatchedLeft))
	want := pgRows(t, db.Pool, `SELECT id::text, (d - date '2000-01-01')::text, (extract(epoch from ts) * 1000000)::bigint::text,
		(extract(epoch from ts_tz) * 1000000)::bigint::text, coalesce('text:' || note, 'null') FROM ancient`)
	kallatest.SameRows(t, "values", got, want)
}
