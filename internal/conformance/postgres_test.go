package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// Every common Postgres type arrives in the result files with its type and
// value unchanged.
func TestPostgresTypesRoundTripIntoOutputs(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE typed (
		id bigint PRIMARY KEY, amount numeric(12,2), wide numeric(38,10), free numeric, due date,
		ts timestamp, ts_tz timestamptz, ref uuid, paid boolean, note text, code char(5), label varchar(20),
		small int2, medium int4, ratio float8, approx float4, doc jsonb, span interval)`)
	db.Exec(t, `INSERT INTO typed VALUES
		(1, -1234567890.12, 1234567890123456789012345678.0123456789, 3.14159, '2026-02-28',
		 '2026-03-01 12:34:56.789012', '2026-03-01 12:34:56.789012+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true,
		 E'  spaces, "quotes"\nnewline, ünïcødé ✓  ', 'ab', 'x', -32768, 2147483647, 0.1, 1.5, '{"k": [1, 2]}', '1 day 02:03:04'),
		(2, 0.00, 0, 100, '1970-01-01', '1999-12-31 23:59:59', '2000-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', false,
		 '', '     ', '', 32767, -2147483648, -1e300, -0.25, '[]', '-3 months'),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	// The right side matches nothing, so every row lands in unmatched_left.
	dir := t.TempDir()
	right := filepath.Join(dir, "right.csv")
	os.WriteFile(right, []byte("rid\n99\n"), 0o644)
	job := &kalla.Job{
		MatchSQL:    "SELECT l.id, r.rid FROM left_src l JOIN right_src r ON l.id = r.rid",
		Sources:     []kalla.SourceSpec{{Alias: "left_src", URI: db.TableURI("typed")}, {Alias: "right_src", URI: right}},
		OutputPath:  filepath.Join(dir, "out"),
		PrimaryKeys: map[string][]string{"left_src": {"id"}, "right_src": {"rid"}},
	}
	res, err := newRunner(t).Run(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.UnmatchedLeftCount != 3 || res.LeftCount != 3 {
		t.Fatalf("counts: %+v", res)
	}
	out := parquetOf(res.OutputPaths.UnmatchedLeft)
	gotTypes := ducktest.Rows(t, "SELECT typeof(COLUMNS(*)) FROM "+out+" LIMIT 1")
	wantTypes := []string{"BIGINT|DECIMAL(12,2)|DECIMAL(38,10)|DECIMAL(18,5)|DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE|UUID|BOOLEAN|VARCHAR|VARCHAR|VARCHAR|SMALLINT|INTEGER|DOUBLE|FLOAT|JSON|VARCHAR"}
	kallatest.SameRows(t, "types", gotTypes, wantTypes)

	// Values: both databases render each column as text the same way;
	// instants are compared as epoch microseconds, and char(5) keeps the
	// padding Postgres stores and sends (its ::text cast would trim it).
	got := ducktest.Rows(t, `SELECT id, amount, wide, free, due, strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), epoch_us(ts_tz), ref, paid, note, code, label,
		small, medium, ratio::VARCHAR, approx::VARCHAR, doc, span FROM `+out)
	want := pgRows(t, db.Pool, `SELECT id::text, amount::text, wide::text, free::numeric(18,5)::text, due::text,
		to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US'), (extract(epoch from ts_tz) * 1000000)::bigint::text, ref::text,
		paid::text, note, rpad(code::text, 5), label, small::text, medium::text,
		ratio::text, approx::text, doc::text, span::text FROM typed`)
	kallatest.SameRows(t, "values", got, want)
}
