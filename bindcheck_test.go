package kalla

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// csvHead cuts after the last line break outside a quoted field, and
// declines files no larger than the sample or without such a break.
func TestCSVHead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name, text string
		max        int64
		want       string // "" for no sample
	}{
		{"whole file fits", "id,v\n1,a\n2,b\n", 64, ""},
		{"exactly the sample", "id,v\n1,a\n", 9, ""},
		{"cut at a row", "id,v\n1,a\n2,b\n3,c\n", 12, "id,v\n1,a\n"},
		{"cut inside a quoted line break", "id,v\n0,a\n1,\"x\ny\"\n2,b\n", 14, "id,v\n0,a\n"},
		{"escaped quotes count twice", "id,v\n1,\"say \"\"hi\"\"\"\n2,b\n", 22, "id,v\n1,\"say \"\"hi\"\"\"\n"},
		{"no row in the sample", "id,value_with_a_long_name\n1,a\n", 10, ""},
		{"crlf", "id,v\r\n1,a\r\n2,b\r\n", 12, "id,v\r\n1,a\r\n"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".csv")
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		head, ok, err := csvHead(path, c.max)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(head); ok != (c.want != "") || got != c.want {
			t.Errorf("%s: %q (ok %v), want %q", c.name, got, ok, c.want)
		}
	}
}

// fileSource is a local file read in place, as file.Source is.
type fileSource struct{ fs FileSource }

func (f fileSource) Split(context.Context, []Filter, int) (*SourceSplits, error) {
	return WholeSplits(), nil
}
func (f fileSource) Read(context.Context, SourceSplit, string) (Reading, error) {
	return Reading{Files: &f.fs}, nil
}
func (f fileSource) Local() *FileSource { return &f.fs }
func (fileSource) Close() error         { return nil }

// A CSV source read for its columns gives the engine a sample of its first
// file when the file is larger than the sample, and the file itself
// otherwise, or when it reads rows.
func TestCSVSampleRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "a.csv")
	var b strings.Builder
	b.WriteString("id,amount\n")
	for b.Len() <= int(csvSampleBytes)+100 {
		b.WriteString("12345,67.89\n")
	}
	if err := os.WriteFile(big, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.csv"), []byte("id,amount\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(dir, "*.csv")
	for _, c := range []struct {
		name    string
		pattern string
		split   SourceSplit
		sampled bool
	}{
		{"the first file of a glob, for its columns", glob, SchemaOnly, true},
		{"a large file, for its columns", big, SchemaOnly, true},
		{"a small file", filepath.Join(dir, "b.csv"), SchemaOnly, false},
		{"rows", big, Whole, false},
	} {
		s := &csvSample{Source: fileSource{FileSource{Pattern: c.pattern, Format: FormatCSV}}}
		out := t.TempDir()
		rd, err := s.Read(t.Context(), c.split, out)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !c.sampled {
			if rd.Files.Pattern != c.pattern || s.cut {
				t.Errorf("%s: read %q (cut %v), want the source itself", c.name, rd.Files.Pattern, s.cut)
			}
			continue
		}
		if filepath.Dir(rd.Files.Pattern) != out || !s.cut || rd.Files.Format != FormatCSV {
			t.Fatalf("%s: read %+v (cut %v), want a sample in %s", c.name, rd.Files, s.cut, out)
		}
		got, err := os.ReadFile(rd.Files.Pattern)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) > csvSampleBytes || !strings.HasPrefix(b.String(), string(got)) || !strings.HasSuffix(string(got), "67.89\n") {
			t.Errorf("%s: a sample of %d bytes that is not a head of whole rows of the file", c.name, len(got))
		}
	}
}
