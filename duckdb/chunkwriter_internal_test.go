package duckdb

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// chunkTestCols are the column kinds a row source hands over.
var chunkTestCols = []kalla.Column{
	{Name: "id", Type: kalla.Type{Kind: kalla.TypeBigint}},
	{Name: "flag", Type: kalla.Type{Kind: kalla.TypeBoolean}},
	{Name: "small", Type: kalla.Type{Kind: kalla.TypeSmallint}},
	{Name: "medium", Type: kalla.Type{Kind: kalla.TypeInteger}},
	{Name: "amount", Type: kalla.Type{Kind: kalla.TypeDecimal, Precision: 12, Scale: 2}},
	{Name: "wide", Type: kalla.Type{Kind: kalla.TypeDecimal, Precision: 38, Scale: 10}},
	{Name: "day", Type: kalla.Type{Kind: kalla.TypeDate}},
	{Name: "ts", Type: kalla.Type{Kind: kalla.TypeTimestamp}},
	{Name: "ts_tz", Type: kalla.Type{Kind: kalla.TypeTimestampTZ}},
	{Name: "ref", Type: kalla.Type{Kind: kalla.TypeUUID}},
	{Name: "it's \"note\"", Type: kalla.Type{Kind: kalla.TypeVarchar}},
	{Name: "raw", Type: kalla.Type{Kind: kalla.TypeBlob}},
	{Name: "ratio", Type: kalla.Type{Kind: kalla.TypeDouble}},
	{Name: "tm", Type: kalla.Type{Kind: kalla.TypeTime}},
}

// chunkRow is row i of the test: every column's value, or nil for NULL.
type chunkRow struct {
	flag     *bool
	small    int16
	medium   int32
	amount   int64
	wide     *big.Int
	days     int32
	us       int64
	ref      [16]byte
	note     *string
	raw      []byte
	ratio    float64
	tm       int64 // microseconds since midnight
	restNull bool  // every column but id and flag NULL
}

func makeChunkRow(i int) chunkRow {
	r := chunkRow{
		small:  int16(i%60000 - 30000),
		medium: int32(i*1000 - 2_000_000_000),
		amount: int64(i*7 - 17000),
		wide:   new(big.Int).Add(new(big.Int).Mul(big.NewInt(int64(i)), new(big.Int).Exp(big.NewInt(10), big.NewInt(27), nil)), big.NewInt(1)),
		days:   int32(i*37 - 800000), // from 221 BC
		us:     int64(i)*86_400_000_123 - 5_000_000_000_000_000,
		raw:    []byte{byte(i), 0, byte(i >> 8)},
		ratio:  float64(i) + 0.5,
		tm:     int64(i) * 3_600_000_007 % 86_400_000_000,
	}
	for k := range r.ref {
		r.ref[k] = byte(i*31 + k)
	}
	if i%11 != 0 {
		b := i%3 == 0
		r.flag = &b
	}
	note := fmt.Sprintf("  row %d, \"ü\"\n\\", i)
	switch {
	case i%13 == 0:
	case i%7 == 0:
		note = ""
		r.note = &note
	default:
		r.note = &note
	}
	r.restNull = i%97 == 0
	return r
}

// write writes row i through the typed setters, or, for odd rows, as Go
// values through WriteRow.
func (r chunkRow) write(t *testing.T, w *chunkWriter, i int) {
	t.Helper()
	if i%2 == 1 {
		vals := []any{int64(i), nil, r.small, r.medium, r.amount, r.wide,
			time.Unix(int64(r.days)*86400, 0).UTC(), time.UnixMicro(r.us).UTC(), time.UnixMicro(r.us), r.ref[:], nil, r.raw, r.ratio, r.timeOfDay()}
		if r.flag != nil {
			vals[1] = *r.flag
		}
		if r.note != nil {
			vals[10] = *r.note
		}
		if r.restNull {
			for k := 2; k < len(vals); k++ {
				vals[k] = nil
			}
		}
		if err := w.WriteRow(vals...); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		return
	}
	w.SetInt64(0, int64(i))
	if r.flag != nil {
		w.SetBool(1, *r.flag)
	} else {
		w.SetNull(1)
	}
	if r.restNull {
		for k := 2; k < len(chunkTestCols); k++ {
			w.SetNull(k)
		}
	} else {
		w.SetInt16(2, r.small)
		w.SetInt32(3, r.medium)
		w.SetInt64(4, r.amount)
		w.SetValue(5, r.wide)
		w.SetDate(6, r.days)
		w.SetTimestamp(7, r.us)
		w.SetTimestamp(8, r.us)
		w.SetUUID(9, r.ref)
		if r.note != nil {
			w.SetBytes(10, []byte(*r.note))
		} else {
			w.SetNull(10)
		}
		w.SetBytes(11, r.raw)
		w.SetValue(12, r.ratio)
		w.SetValue(13, r.timeOfDay())
	}
	if err := w.EndRow(); err != nil {
		t.Fatalf("row %d: %v", i, err)
	}
}

// text is the row as the test's SELECT renders it.
func (r chunkRow) text(i int) string {
	flag, note := "null", "null"
	if r.flag != nil {
		flag = strconv.FormatBool(*r.flag)
	}
	if r.note != nil {
		note = "text:" + *r.note
	}
	if r.restNull {
		return strings.Join([]string{strconv.Itoa(i), flag, "null", "null", "null", "null", "null", "null", "null", "null", "null", "null", "null", "null"}, "|")
	}
	ref := fmt.Sprintf("%x-%x-%x-%x-%x", r.ref[0:4], r.ref[4:6], r.ref[6:8], r.ref[8:10], r.ref[10:16])
	return strings.Join([]string{strconv.Itoa(i), flag, strconv.Itoa(int(r.small)), strconv.Itoa(int(r.medium)),
		decimalText(big.NewInt(r.amount), 2), decimalText(r.wide, 10), strconv.Itoa(int(r.days)),
		strconv.FormatInt(r.us, 10), strconv.FormatInt(r.us, 10), ref, note, fmt.Sprintf("%X", r.raw),
		strconv.FormatFloat(r.ratio, 'f', -1, 64), strconv.FormatInt(r.tm, 10)}, "|")
}

// timeOfDay is tm as kalla.TypeTime's Go value: on 0001-01-01 UTC.
func (r chunkRow) timeOfDay() time.Time {
	return time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.tm) * time.Microsecond)
}

// decimalText writes an unscaled value with scale digits after the point.
func decimalText(v *big.Int, scale int) string {
	s := new(big.Int).Abs(v).String()
	for len(s) <= scale {
		s = "0" + s
	}
	if v.Sign() < 0 {
		s = "-" + s
	}
	return s[:len(s)-scale] + "." + s[len(s)-scale:]
}

// Rows written through a column writer arrive exactly, in batches smaller
// than the test's rows (by count and by bytes), so that a batch ends inside
// a chunk, a NULL lands on a chunk's edges, and text straddles loads.
func TestChunkWriterKeepsValuesAcrossBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, sink := chunkTestSink(t)
	w, err := sink.newChunkWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Chunks hold 2048 rows; a row takes about 180 bytes, so a batch ends
	// by bytes at about 2700 rows.
	w.maxRows, w.maxBytes = 5000, 500_000
	const n = 23_456
	want := make([]string, n)
	for i := range n {
		r := makeChunkRow(i)
		r.write(t, w, i)
		want[i] = r.text(i)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sink.rows.Load(); got != n {
		t.Errorf("progress counted %d rows, want %d", got, n)
	}
	got := sessionRows(t, s, `SELECT id, coalesce(flag::VARCHAR, 'null'), coalesce(small::VARCHAR, 'null'), coalesce(medium::VARCHAR, 'null'),
		coalesce(amount::VARCHAR, 'null'), coalesce(wide::VARCHAR, 'null'), coalesce((day - DATE '1970-01-01')::VARCHAR, 'null'),
		coalesce(epoch_us(ts)::VARCHAR, 'null'), coalesce(epoch_us(ts_tz)::VARCHAR, 'null'), coalesce(ref::VARCHAR, 'null'),
		CASE WHEN "it's ""note""" IS NULL THEN 'null' ELSE 'text:' || "it's ""note""" END, coalesce(hex(raw), 'null'), coalesce(ratio::VARCHAR, 'null'),
		coalesce((hour(tm)::BIGINT * 3600000000 + minute(tm)::BIGINT * 60000000 + microsecond(tm))::VARCHAR, 'null')
		FROM `+s.qualified("t")+` ORDER BY id`)
	kallatest.SameRows(t, "rows", got, want)
}

// A value of the wrong type is refused by EndRow, naming the column, and
// Close loads the rows before it.
func TestChunkWriterRefusesAMismatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, sink := chunkTestSink(t)
	w, err := sink.newChunkWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	makeChunkRow(1).write(t, w, 2)
	w.SetInt16(2, 5) // a column set before the one that fails is dropped with the row
	w.SetBytes(0, []byte("7"))
	err = w.EndRow()
	if err == nil || !strings.Contains(err.Error(), `column "id"`) || !strings.Contains(err.Error(), "BIGINT") {
		t.Fatalf("got %v, want an error naming column id and its type", err)
	}
	makeChunkRow(3).write(t, w, 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	kallatest.SameRows(t, "rows", sessionRows(t, s, "SELECT id, small FROM "+s.qualified("t")+" ORDER BY id"), []string{"2|-29999", "4|-29997"})
}

// chunkTestSink is a session with table t of chunkTestCols, and its sink.
func chunkTestSink(t *testing.T) (*Session, *appendSink) {
	t.Helper()
	ctx := context.Background()
	eng, err := Open(Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	sess, err := eng.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	s := sess.(*Session)
	defs := make([]string, len(chunkTestCols))
	for i, c := range chunkTestCols {
		defs[i] = quoteIdent(c.Name) + " " + c.Type.SQL()
	}
	if _, err := s.conn.ExecContext(ctx, "CREATE TABLE "+s.qualified("t")+" ("+strings.Join(defs, ", ")+")"); err != nil {
		t.Fatal(err)
	}
	return s, &appendSink{db: s.db, schema: s.schema, table: "t", cols: chunkTestCols, qualified: s.qualified("t")}
}

// sessionRows runs query on the session and returns its rows, columns
// joined by "|".
func sessionRows(t *testing.T, s *Session, query string) []string {
	t.Helper()
	rows, err := s.conn.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(vals, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A fault while filling a chunk (here a batch that claims rows it does not
// hold) fails the load with an error instead of ending the process.
func TestChunkWriterFailsAFaultyLoad(t *testing.T) {
	t.Parallel()
	_, sink := chunkTestSink(t)
	w, err := sink.newChunkWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.rows = 10
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "fill a chunk") {
		t.Fatalf("got %v, want the load to fail filling a chunk", err)
	}
}
