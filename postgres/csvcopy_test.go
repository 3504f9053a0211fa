package postgres

import (
	"context"
	"testing"
)

// Only tables whose every column reads back exactly from CSV text take the
// CSV path: one float, JSON, bytes, time, unconstrained numeric or column
// read as ::text keeps the whole table on binary COPY.
func TestCSVExact(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE exact (id int8, small int2, medium int4, amount numeric(12,2), wide numeric(38,10),
		due date, ts timestamp, tstz timestamptz, ref uuid, paid boolean, note text, code char(5), label varchar(9), nm name)`)
	cases := map[string]bool{"exact": true}
	for name, col := range map[string]string{
		"float8": "float8", "float4": "float4", "json": "json", "jsonb": "jsonb", "bytea": "bytea", "time": "time",
		"free": "numeric", "huge": "numeric(60,2)", "iv": "interval", "arr": "int[]", "ip": "inet",
	} {
		tb.db.Exec(t, `CREATE TABLE "`+name+`" (id int8, amount numeric(12,2), x `+col+`)`)
		tb.db.Exec(t, `INSERT INTO "`+name+`" (id) VALUES (1)`)
		cases[name] = false
	}
	for table, want := range cases {
		rel, err := tb.open(t, table).relation(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if got := rel.csvExact(); got != want {
			t.Errorf("%s: csvExact %v, want %v", table, got, want)
		}
	}
}
