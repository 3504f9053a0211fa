package duckdb

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quotedCSV has quoted fields with newlines (LF and CRLF), delimiters and
// doubled quotes, an empty quoted field, and a last record without a line
// end.
const quotedCSV = "id,note,amount\n" +
	"1,plain,1.00\n" +
	"2,\"two\nlines\",2.50\n" +
	"3,\"comma, and \"\"quotes\"\"\",3.25\n" +
	"4,\"\n\",4.00\n" +
	"5,\"\"\"\nstarts with a quote\",5.75\n" +
	"6,\"crlf\r\ninside\",6.00\r\n" +
	"7,\"\",7.10\n" +
	"8,\"ends\n\",8.20\n" +
	"9,last,9.99"

// recordOffsets returns where each record of content ends, by
// encoding/csv: the reference the cutter must agree with.
func recordOffsets(t *testing.T, content string) map[int64]bool {
	t.Helper()
	r := csv.NewReader(strings.NewReader(content))
	ends := map[int64]bool{}
	for {
		if _, err := r.Read(); err != nil {
			break
		}
		ends[r.InputOffset()] = true
	}
	return ends
}

// Whatever the target size of a split, so that a cut is wanted at every
// byte of the file (inside quoted fields, between a doubled quote, between
// CR and LF), the cutter cuts only where a record ends, and its ranges
// cover the records after the header exactly once.
func TestCutCSVAtEveryPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quoted.csv")
	if err := os.WriteFile(path, []byte(quotedCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	ends := recordOffsets(t, quotedCSV)
	if len(ends) != 10 {
		t.Fatalf("reference found %d records, want 10", len(ends))
	}
	header := int64(strings.IndexByte(quotedCSV, '\n') + 1)
	d := csvDialect{Delim: ",", Quote: `"`, Escape: `"`}
	size := int64(len(quotedCSV))
	for chunk := int64(1); chunk <= size; chunk++ {
		parts, err := cutCSV(context.Background(), []string{path}, d, int(size), chunk)
		if err != nil {
			t.Fatal(err)
		}
		next := header
		for _, p := range parts {
			for _, r := range p {
				if r.Start != next || r.End <= r.Start || !ends[r.End] {
					t.Fatalf("chunk %d: range [%d, %d) after %d: not whole records", chunk, r.Start, r.End, next)
				}
				next = r.End
			}
		}
		if next != size {
			t.Fatalf("chunk %d: ranges end at %d of %d bytes", chunk, next, size)
		}
		if chunk == 1 && len(parts) != 9 {
			t.Errorf("chunk 1: %d splits, want one per record", len(parts))
		}
	}
}

// An escape that is not the quote escapes the next byte of a quoted field:
// \" does not close it.
func TestRecordEndsBackslashEscape(t *testing.T) {
	content := "a,b\n1,\"x\\\"\ny\"\n2,\"\\\\\"\n3,z\n"
	var got []int64
	n, err := recordEnds(context.Background(), strings.NewReader(content), '"', '\\', func(end int64) { got = append(got, end) })
	if err != nil || n != int64(len(content)) {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	want := []int64{4, 14, 21, 25}
	if len(got) != len(want) {
		t.Fatalf("record ends %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record ends %v, want %v", got, want)
		}
	}
}
