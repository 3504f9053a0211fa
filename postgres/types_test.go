package postgres

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TYPE mood AS ENUM ('sad', 'happy')`)
	tb.db.Exec(t, `CREATE DOMAIN amount AS numeric(12,2)`)
	tb.db.Exec(t, `CREATE TABLE everything (
		id int PRIMARY KEY,
		n12 numeric(12,2), n38 numeric(38,10), nfree numeric, nhuge numeric,
		d date, ts timestamp, tstz timestamptz, tm time,
		u uuid, b boolean,
		t text, c5 char(5), vc varchar(10), nm name,
		i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
		j json, jb jsonb,
		iv interval, arr int[], m mood, ip inet,
		dom amount, by bytea)`)
	tb.db.Exec(t, `INSERT INTO everything VALUES
		(1, 9999999999.99, 1234567890123456789012345678.0123456789, 1.5, 1,
		 '2024-02-29', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02', '13:14:15.123456',
		 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true,
		 '  Zürich € 日本 🎉  ', 'ab', 'vé', 'pg_name',
		 -32768, -2147483648, -9223372036854775808, 1.5, 0.1,
		 '{"a": 1,  "b": [true, null]}', '{"b": [1, 2], "a": "x"}',
		 '1 day 02:03:04', '{1,2,3}', 'happy', '192.168.0.1/24',
		 12.30, '\x00ff10'),
		(2, -0.01, -0.0000000001, -123456.789, 12345678901234567890123456789012345678901.5,
		 '1999-12-31', '1969-12-31 23:59:59.999999', '2000-01-01 00:00:00+00', '00:00:00',
		 '00000000-0000-0000-0000-000000000000', false,
		 E'it''s "quoted"\nnew line\ttab \\ back; DROP TABLE everything; --', 'abcde', 'x  ', 'x',
		 32767, 2147483647, 9223372036854775807, -3.4028235e38, 'Infinity',
		 '[]', '"str"',
		 '-1 mons', '{}', 'sad', '::1',
		 -5, '\x'),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 0.00, 0, 0, 0,
		 '0001-01-01', '1900-01-01 00:00:00.000001', '1999-12-31 23:59:59.5-01', '23:59:59.999999',
		 'ffffffff-ffff-ffff-ffff-ffffffffffff', false,
		 '', '', '', '',
		 0, 0, 0, 'NaN', '-0',
		 'null', '{}',
		 '0', '{NULL}', 'sad', '10.0.0.0/8',
		 0, '\x27')`)

	src := tb.open(t, "everything")
	cols, err := src.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dec := func(p, s int) kalla.Type { return kalla.Type{Kind: kalla.TypeDecimal, Precision: p, Scale: s} }
	typ := func(k kalla.TypeKind) kalla.Type { return kalla.Type{Kind: k} }
	col := func(name string, t kalla.Type) kalla.Column { return kalla.Column{Name: name, Type: t} }
	wantCols := []kalla.Column{
		col("id", typ(kalla.TypeInteger)),
		col("n12", dec(12, 2)), col("n38", dec(38, 10)), col("nfree", dec(18, 3)), col("nhuge", typ(kalla.TypeVarchar)),
		col("d", typ(kalla.TypeDate)), col("ts", typ(kalla.TypeTimestamp)), col("tstz", typ(kalla.TypeTimestampTZ)), col("tm", typ(kalla.TypeTime)),
		col("u", typ(kalla.TypeUUID)), col("b", typ(kalla.TypeBoolean)),
		col("t", typ(kalla.TypeVarchar)), col("c5", typ(kalla.TypeVarchar)), col("vc", typ(kalla.TypeVarchar)), col("nm", typ(kalla.TypeVarchar)),
		col("i2", typ(kalla.TypeSmallint)), col("i4", typ(kalla.TypeInteger)), col("i8", typ(kalla.TypeBigint)),
		col("f4", typ(kalla.TypeReal)), col("f8", typ(kalla.TypeDouble)),
		col("j", typ(kalla.TypeJSON)), col("jb", typ(kalla.TypeJSON)),
		col("iv", typ(kalla.TypeVarchar)), col("arr", typ(kalla.TypeVarchar)), col("m", typ(kalla.TypeVarchar)), col("ip", typ(kalla.TypeVarchar)),
		col("dom", dec(12, 2)), col("by", typ(kalla.TypeBlob)),
	}
	if !slices.Equal(cols, wantCols) {
		t.Fatalf("Columns:\n got %v\nwant %v", cols, wantCols)
	}
	if log := tb.log.String(); !strings.Contains(log, "too wide") || !strings.Contains(log, "nhuge") {
		t.Errorf("no warning about the text fallback of nhuge in the log:\n%s", log)
	}

	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05.999999999Z07:00", s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	uuid := func(s string) []byte {
		var b []byte
		s = strings.ReplaceAll(s, "-", "")
		for i := 0; i < len(s); i += 2 {
			var x byte
			fmt.Sscanf(s[i:i+2], "%02x", &x)
			b = append(b, x)
		}
		return b
	}
	want := [][]any{
		{int32(1), int64(999999999999), bigInt(t, "12345678901234567890123456780123456789"), int64(1500), "1",
			utc("2024-02-29 00:00:00Z"), utc("2024-02-29 13:14:15.123456Z"), utc("2024-02-29 11:14:15.123456Z"), utc("0001-01-01 13:14:15.123456Z"),
			uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), true,
			"  Zürich € 日本 🎉  ", "ab   ", "vé", "pg_name",
			int16(-32768), int32(-2147483648), int64(math.MinInt64), float32(1.5), float64(0.1),
			`{"a": 1,  "b": [true, null]}`, `{"a": "x", "b": [1, 2]}`,
			"1 day 02:03:04", "{1,2,3}", "happy", "192.168.0.1/24",
			int64(1230), []byte{0x00, 0xff, 0x10}},
		{int32(2), int64(-1), big.NewInt(-1), int64(-123456789), "12345678901234567890123456789012345678901.5",
			utc("1999-12-31 00:00:00Z"), utc("1969-12-31 23:59:59.999999Z"), utc("2000-01-01 00:00:00Z"), utc("0001-01-01 00:00:00Z"),
			make([]byte, 16), false,
			"it's \"quoted\"\nnew line\ttab \\ back; DROP TABLE everything; --", "abcde", "x  ", "x",
			int16(32767), int32(2147483647), int64(math.MaxInt64), float32(-3.4028235e38), math.Inf(1),
			`[]`, `"str"`,
			"-1 mons", "{}", "sad", "::1/128", // inet::text keeps the mask
			int64(-500), []byte{}},
		{int32(3), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		{int32(4), int64(0), big.NewInt(0), int64(0), "0",
			utc("0001-01-01 00:00:00Z"), utc("1900-01-01 00:00:00.000001Z"), utc("2000-01-01 00:59:59.5Z"), utc("0001-01-01 23:59:59.999999Z"),
			uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"), false,
			"", "     ", "", "",
			int16(0), int32(0), int64(0), float32(math.NaN()), math.Copysign(0, -1),
			`null`, `{}`,
			"00:00:00", "{NULL}", "sad", "10.0.0.0/8",
			int64(0), []byte{0x27}},
	}

	for _, par := range []int{1, 4} {
		sink, err := scanAll(t, src, par)
		if err != nil {
			t.Fatalf("Scan(parallelism %d): %v", par, err)
		}
		slices.SortFunc(sink.rows, func(a, b []any) int { return int(a[0].(int32) - b[0].(int32)) })
		if len(sink.rows) != len(want) {
			t.Fatalf("got %d rows, want %d", len(sink.rows), len(want))
		}
		for r := range want {
			for c := range want[r] {
				if !sameValue(sink.rows[r][c], want[r][c]) {
					t.Errorf("row %d column %s: got %#v (%T), want %#v (%T)", r+1, cols[c].Name, sink.rows[r][c], sink.rows[r][c], want[r][c], want[r][c])
				}
			}
		}
	}
}

// TestNumericExact reads random numerics of every magnitude and compares
// them, digit for digit, with Postgres's own text.
func TestNumericExact(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE nums (n18 numeric(18,4), n38 numeric(38,10), nfree numeric, n18t text, n38t text, nfreet text)`)
	tb.db.Exec(t, `
		INSERT INTO nums (n18, n38, nfree)
		SELECT round(((random() - 0.5) * 10 ^ (random() * 14))::numeric, (random() * 4)::int),
		       round(((random() - 0.5) * 10 ^ (random() * 28))::numeric, (random() * 10)::int),
		       round(((random() - 0.5) * 10 ^ (random() * 20))::numeric, (random() * 6)::int)
		FROM generate_series(1, 5000)`)
	tb.db.Exec(t, `INSERT INTO nums (n18, n38, nfree) VALUES
		(99999999999999.9999, 9999999999999999999999999999.9999999999, 99999999999999.999999),
		(-99999999999999.9999, -9999999999999999999999999999.9999999999, -99999999999999.999999),
		(0.0001, 0.0000000001, 0.000001), (10000, 10000, 10000), (1e13, 1e27, 1e13)`)
	tb.db.Exec(t, `UPDATE nums SET n18t = n18::text, n38t = n38::text, nfreet = nfree::text`)

	src := tb.open(t, "nums")
	cols, err := src.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (kalla.Type{Kind: kalla.TypeDecimal, Precision: 38, Scale: 6}); cols[2].Type != want {
		t.Fatalf("nfree is %v, want %v", cols[2].Type, want)
	}
	sink, err := scanAll(t, src, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != 5005 {
		t.Fatalf("got %d rows", len(sink.rows))
	}
	for _, row := range sink.rows {
		for c := range 3 {
			var unscaled *big.Int
			switch v := row[c].(type) {
			case int64:
				unscaled = big.NewInt(v)
			case *big.Int:
				unscaled = v
			default:
				t.Fatalf("column %s: %T", cols[c].Name, v)
			}
			got := new(big.Rat).SetFrac(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(cols[c].Type.Scale)), nil))
			want, ok := new(big.Rat).SetString(row[c+3].(string))
			if !ok || got.Cmp(want) != 0 {
				t.Errorf("column %s: got %s, want %s", cols[c].Name, got.FloatString(cols[c].Type.Scale), row[c+3])
			}
		}
	}
}

func TestNumericSpecialValues(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE specials (id int, amount numeric)`)
	tb.db.Exec(t, `INSERT INTO specials VALUES (1, 1.5), (2, 'NaN')`)
	_, err := scanAll(t, tb.open(t, "specials"), 1)
	if err == nil || !strings.Contains(err.Error(), `"amount"`) || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("NaN: got %v, want an error naming the column and NaN", err)
	}

	tb.db.Exec(t, `CREATE TABLE forever (id int, d date, ts timestamptz)`)
	tb.db.Exec(t, `INSERT INTO forever VALUES (1, 'infinity', now())`)
	_, err = scanAll(t, tb.open(t, "forever"), 1)
	if err == nil || !strings.Contains(err.Error(), `"d"`) || !strings.Contains(err.Error(), "infinity") {
		t.Fatalf("date infinity: got %v, want an error naming the column and infinity", err)
	}
	tb.db.Exec(t, `UPDATE forever SET d = now(), ts = '-infinity'`)
	_, err = scanAll(t, tb.open(t, "forever"), 1)
	if err == nil || !strings.Contains(err.Error(), `"ts"`) || !strings.Contains(err.Error(), "infinity") {
		t.Fatalf("timestamp -infinity: got %v, want an error naming the column and infinity", err)
	}
}

func TestCitext(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	if _, err := tb.db.Pool.Exec(context.Background(), `CREATE EXTENSION IF NOT EXISTS citext`); err != nil {
		t.Skipf("citext is not available: %v", err)
	}
	tb.db.Exec(t, `CREATE TABLE people (email citext)`)
	tb.db.Exec(t, `INSERT INTO people VALUES ('Ann@Example.com'), ('bob@example.com')`)
	src := tb.open(t, "people")
	cols, err := src.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cols[0].Type.Kind != kalla.TypeVarchar {
		t.Fatalf("citext is %v", cols[0].Type)
	}
	sink, err := scanAll(t, src, 1, kalla.Filter{Column: "email", Op: kalla.OpEq, Value: []byte(`"ann@example.COM"`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != 1 || sink.rows[0][0] != "Ann@Example.com" {
		t.Fatalf("got %v, want the row of Ann as written", sink.rows)
	}
}

func TestViewAndQuotedNames(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE "Mixed Case" ("Id" int, "we""ird col" text)`)
	tb.db.Exec(t, `INSERT INTO "Mixed Case" VALUES (1, 'a'), (2, 'b')`)
	tb.db.Exec(t, `CREATE VIEW lower_view AS SELECT "Id" * 10 AS id FROM "Mixed Case"`)

	src := tb.openURI(t, tb.db.TableURI(`"Mixed Case"`))
	sink, err := scanAll(t, src, 4, kalla.Filter{Column: `we"ird col`, Op: kalla.OpEq, Value: []byte(`"b"`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != 1 || sink.rows[0][0] != int32(2) {
		t.Fatalf("got %v", sink.rows)
	}

	// A bare name is found as written, then folded to lower case as SQL
	// would; the schema comes from search_path.
	for _, table := range []string{"lower_view", "LOWER_VIEW", tb.db.Schema + ".Lower_View"} {
		src := tb.openURI(t, strings.Replace(tb.db.TableURI("x"), "table="+tb.db.Schema+".x", "table="+table, 1))
		sink, err := scanAll(t, src, 4)
		if err != nil {
			t.Fatalf("table=%s: %v", table, err)
		}
		if len(sink.rows) != 2 {
			t.Fatalf("table=%s: got %d rows", table, len(sink.rows))
		}
	}
}

// TestNumericOddTypmods reads the numeric shapes DECIMAL has no direct
// equal for: a negative scale, a scale above the precision (both Postgres
// 15), and a precision above 38.
func TestNumericOddTypmods(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var version int
	if err := tb.db.Pool.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 150000 {
		t.Skip("negative scales need Postgres 15")
	}
	tb.db.Exec(t, `CREATE TABLE odd (neg numeric(2,-3), small numeric(3,5), wide numeric(50,2))`)
	tb.db.Exec(t, `INSERT INTO odd VALUES (12345, 0.00123, 123.45), (-99000, -0.00999, -99999999999999999999999999999999.99)`)
	src := tb.open(t, "odd")
	cols, err := src.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []kalla.Type{
		{Kind: kalla.TypeDecimal, Precision: 5, Scale: 0},
		{Kind: kalla.TypeDecimal, Precision: 5, Scale: 5},
		{Kind: kalla.TypeDecimal, Precision: 38, Scale: 2},
	}
	for i, c := range cols {
		if c.Type != want[i] {
			t.Errorf("%s: %v, want %v", c.Name, c.Type, want[i])
		}
	}
	sink, err := scanAll(t, src, 1)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(sink.rows, func(a, b []any) int { return int(b[0].(int64) - a[0].(int64)) })
	wantRows := [][]any{
		{int64(12000), int64(123), bigInt(t, "12345")},
		{int64(-99000), int64(-999), bigInt(t, "-9999999999999999999999999999999999")},
	}
	for r := range wantRows {
		for c := range wantRows[r] {
			if !sameValue(sink.rows[r][c], wantRows[r][c]) {
				t.Errorf("row %d %s: got %v, want %v", r, cols[c].Name, sink.rows[r][c], wantRows[r][c])
			}
		}
	}
}
