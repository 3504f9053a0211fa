package parquet_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
	"github.com/kalla-dev/kalla/internal/parquet"
)

// A reader that has only the first four bytes, some row groups and the
// footer of a file (a sparse copy, as a split fetched from S3) makes a
// valid file of just those rows by appending WriteSubset's footer.
func TestWriteSubsetOfASparseCopy(t *testing.T) {
	dir := t.TempDir()
	// DuckDB rounds row groups up to 2048 rows: 5 groups.
	src := write(t, dir, "src.parquet", 0, 10000, 2048)
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	f, err := parquet.ReadFooter(in, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	groups := f.RowGroups()
	if len(groups) != 5 || f.Rows() != 10000 {
		t.Fatalf("%d row groups, %d rows; want 5 and 10000", len(groups), f.Rows())
	}
	first := make([]int64, len(groups))
	for g := 1; g < len(groups); g++ {
		first[g] = first[g-1] + groups[g-1].Rows
	}
	for _, pick := range [][]int{{1, 3}, {0}, {4}, {0, 1, 2, 3, 4}, {2, 3}} {
		t.Run(fmt.Sprint(pick), func(t *testing.T) {
			dst := filepath.Join(dir, fmt.Sprintf("subset-%d.parquet", len(pick)*10+pick[0]))
			out, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			if err := out.Truncate(st.Size()); err != nil {
				t.Fatal(err)
			}
			footerLen := st.Size() - groups[4].End
			spans := [][2]int64{{0, 4}, {st.Size() - footerLen, st.Size()}}
			var want []string
			for _, g := range pick {
				spans = append(spans, [2]int64{groups[g].Start, groups[g].End})
				want = append(want, ducktest.Rows(t, rowsSQL(int(first[g]), int(first[g]+groups[g].Rows)))...)
			}
			for _, sp := range spans {
				if _, err := io.Copy(io.NewOffsetWriter(out, sp[0]), io.NewSectionReader(in, sp[0], sp[1]-sp[0])); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := out.Seek(0, io.SeekEnd); err != nil {
				t.Fatal(err)
			}
			if err := f.WriteSubset(out, pick); err != nil {
				t.Fatal(err)
			}
			out.Close()
			sort.Strings(want)
			kallatest.SameRows(t, "subset", ducktest.Rows(t, "SELECT * FROM '"+dst+"'"), want)
		})
	}
	if err := f.WriteSubset(io.Discard, []int{5}); err == nil {
		t.Error("WriteSubset accepted row group 5 of 5")
	}
}
