package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
)

// copyStream returns the binary COPY stream of table, as the server sends
// it, and the table's columns.
func copyStream(t *testing.T, src *Source) ([]byte, []column) {
	t.Helper()
	ctx := context.Background()
	src.mu.Lock()
	defer src.mu.Unlock()
	rel, err := src.relation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.conn.PgConn().CopyTo(ctx, &buf, copySQL(rel, &filterSet{}, pageRange{-1, -1})); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), rel.cols
}

type rowsWriter struct{ rows [][]any }

func (w *rowsWriter) WriteRow(v ...any) error {
	w.rows = append(w.rows, append([]any(nil), v...))
	return nil
}
func (w *rowsWriter) Close() error { return nil }

// decodeChunks feeds stream to a decoder chunk bytes at a time.
func decodeChunks(t *testing.T, stream []byte, cols []column, chunk int) ([][]any, error) {
	t.Helper()
	w := &rowsWriter{}
	d := newCopyDecoder(context.Background(), cols, w)
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		// A copy, reused afterwards, as pgconn's read buffer is.
		piece := append([]byte(nil), stream[:n]...)
		if _, err := d.Write(piece); err != nil {
			return nil, err
		}
		for i := range piece {
			piece[i] = 0xAA
		}
		stream = stream[n:]
	}
	return w.rows, d.finish()
}

// TestDecoderSplitWrites decodes a real stream cut into pieces of every
// small size: tuples split across writes must decode as whole ones.
func TestDecoderSplitWrites(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE mix (id int8, amount numeric(20,4), memo text, at timestamptz, u uuid, b bytea, jb jsonb)`)
	tb.db.Exec(t, `INSERT INTO mix SELECT g, g * 1.2345, repeat('é', g % 7), '2024-01-01'::timestamptz + g * interval '1 hour',
		gen_random_uuid(), decode(repeat('ab', g % 5), 'hex'), jsonb_build_object('g', g)
		FROM generate_series(1, 200) g`)
	tb.db.Exec(t, `INSERT INTO mix VALUES (0, NULL, NULL, NULL, NULL, NULL, NULL)`)
	stream, cols := copyStream(t, tb.open(t, "mix"))

	whole, err := decodeChunks(t, stream, cols, len(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 201 {
		t.Fatalf("got %d rows", len(whole))
	}
	for _, chunk := range []int{1, 2, 3, 5, 19, 64, 1000} {
		rows, err := decodeChunks(t, stream, cols, chunk)
		if err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		if !reflect.DeepEqual(rows, whole) {
			t.Fatalf("chunks of %d: rows differ from the whole stream's", chunk)
		}
	}

	// A stream cut short is an error, wherever the cut falls.
	for _, cut := range []int{5, 19, len(stream) / 2, len(stream) - 2, len(stream) - 1} {
		if _, err := decodeChunks(t, stream[:cut], cols, 7); err == nil || !strings.Contains(err.Error(), "trailer") {
			t.Errorf("stream cut at %d of %d: got %v, want an error about the missing trailer", cut, len(stream), err)
		}
	}
	if _, err := decodeChunks(t, []byte("not a copy stream at all"), cols, 100); err == nil {
		t.Error("garbage decoded without error")
	}
}

// numericBytes encodes a binary numeric.
func numericBytes(weight int16, sign uint16, digits ...uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(digits)))
	b = binary.BigEndian.AppendUint16(b, uint16(weight))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, 0)
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, d)
	}
	return b
}

func TestDecodeNumeric(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		b          []byte
		prec, sc   int
		want       string // unscaled, or "" for an error
		wantErrSub string
	}{
		{"zero", numericBytes(0, numericPos), 12, 2, "0", ""},
		{"1.5 at scale 1", numericBytes(0, numericPos, 1, 5000), 5, 1, "15", ""},
		{"1.5 at scale 4", numericBytes(0, numericPos, 1, 5000), 5, 4, "15000", ""},
		{"-0.01", numericBytes(-1, numericNeg, 100), 12, 2, "-1", ""},
		{"10^20 at scale 0", numericBytes(5, numericPos, 1), 38, 0, "100000000000000000000", ""},
		{"12345.678", numericBytes(1, numericPos, 1, 2345, 6780), 10, 3, "12345678", ""},
		{"0.00001 at scale 2", numericBytes(-2, numericPos, 1000), 10, 2, "", "decimal places"},
		{"1.55 at scale 1", numericBytes(0, numericPos, 1, 5500), 5, 1, "", "decimal places"},
		{"100 in DECIMAL(2,0)", numericBytes(0, numericPos, 100), 2, 0, "", "fit"},
		{"10^38 in DECIMAL(38,0)", numericBytes(9, numericPos, 100), 38, 0, "", "fit"},
		{"NaN", numericBytes(0, numericNaN), 18, 2, "", "NaN"},
		{"Infinity", numericBytes(0, numericPInf), 18, 2, "", "infinity"},
		{"-Infinity", numericBytes(0, numericNInf), 18, 2, "", "infinity"},
		{"short", []byte{0, 1, 0}, 18, 2, "", "numeric"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := column{name: "n", dec: decNumeric, typ: kalla.Type{Kind: kalla.TypeDecimal, Precision: tc.prec, Scale: tc.sc}}
			d := newCopyDecoder(context.Background(), []column{c}, nil)
			v, err := d.value(&c, tc.b)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("got %v, %v; want an error about %q", v, err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch v := v.(type) {
			case int64:
				if tc.prec > 18 {
					t.Errorf("int64 for precision %d", tc.prec)
				}
				got = big.NewInt(v).String()
			case *big.Int:
				if tc.prec <= 18 {
					t.Errorf("*big.Int for precision %d", tc.prec)
				}
				got = v.String()
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNumericTypmod(t *testing.T) {
	t.Parallel()
	tm := func(p, s int) int32 { return int32(p<<16|(s&0x7ff)) + 4 }
	for _, tc := range []struct{ p, s, wantP, wantS int }{
		{12, 2, 12, 2}, {38, 10, 38, 10}, {2, -3, 5, 0}, {3, 5, 5, 5}, {1000, 0, 1000, 0},
	} {
		p, s, ok := numericTypmod(tm(tc.p, tc.s))
		if !ok || p != tc.wantP || s != tc.wantS {
			t.Errorf("numeric(%d,%d): got (%d,%d,%v), want (%d,%d)", tc.p, tc.s, p, s, ok, tc.wantP, tc.wantS)
		}
	}
	if _, _, ok := numericTypmod(-1); ok {
		t.Error("unconstrained numeric has a typmod")
	}
}

// TestBoxedValues checks that values boxed from blocks behave as values the
// runtime boxed: assertions, equality, reflection, and no aliasing.
func TestBoxedValues(t *testing.T) {
	t.Parallel()
	b := newBoxes()
	now := time.Date(2024, 2, 29, 1, 2, 3, 4, time.UTC)
	var got []any
	for i := range 3 * boxBlock {
		got = append(got, b.i64.put(int64(i)), b.str.put(strings.Repeat("x", i%5)), b.time.put(now.Add(time.Duration(i))))
	}
	for i := range 3 * boxBlock {
		v, s, tm := got[3*i], got[3*i+1], got[3*i+2]
		if v != any(int64(i)) || v.(int64) != int64(i) || reflect.TypeOf(v) != reflect.TypeOf(int64(0)) {
			t.Fatalf("int64 %d boxed as %#v", i, v)
		}
		if s != any(strings.Repeat("x", i%5)) {
			t.Fatalf("string %d boxed as %#v", i, s)
		}
		if !tm.(time.Time).Equal(now.Add(time.Duration(i))) || !reflect.DeepEqual(tm, any(now.Add(time.Duration(i)))) {
			t.Fatalf("time %d boxed as %#v", i, tm)
		}
	}
}

func TestParseTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in            string
		exact, folded string
		bad           bool
	}{
		{in: "invoices", exact: `"invoices"`, folded: `"invoices"`},
		{in: "Public.Invoices", exact: `"Public"."Invoices"`, folded: `"public"."invoices"`},
		{in: `"My Schema"."We""ird"`, exact: `"My Schema"."We""ird"`, folded: `"My Schema"."We""ird"`},
		{in: `sales."Q1.2024"`, exact: `"sales"."Q1.2024"`, folded: `"sales"."Q1.2024"`},
		{in: `x"; DROP TABLE t; --`, bad: true},
		{in: "a.b.c", bad: true},
		{in: ".t", bad: true},
		{in: `"open`, bad: true},
	} {
		ref, err := parseTable(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: parsed as %+v", tc.in, ref)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if exact, folded := ref.candidates(); exact != tc.exact || folded != tc.folded {
			t.Errorf("%s: got %s / %s, want %s / %s", tc.in, exact, folded, tc.exact, tc.folded)
		}
	}
}

func TestArrayLiteral(t *testing.T) {
	t.Parallel()
	got := arrayLiteral([]string{`a`, `b"c`, `d\e`, `NULL`, `{x,y}`, ``})
	want := `{"a","b\"c","d\\e","NULL","{x,y}",""}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
