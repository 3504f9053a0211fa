package s3_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
	"github.com/kalla-dev/kalla/s3"
)

// writeParquet writes rows [from, to) to path in row groups of 2048
// (DuckDB's smallest) and returns the file.
func writeParquet(t *testing.T, path string, from, to int) []byte {
	t.Helper()
	ducktest.Query(t, fmt.Sprintf(`COPY (SELECT i AS id, (i * 1.25)::DECIMAL(18,2) AS amount, 'c' || (i %% 3) AS cur,
		CASE WHEN i %% 7 = 0 THEN NULL ELSE 'note ' || i END AS note FROM range(%d, %d) t(i)) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE 2048)`, from, to, path))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each split of an S3 Parquet source is fetched alone, as a stage task on
// another executor would, and read by DuckDB: together the splits hold
// every row exactly once, and each fetches only its row groups.
func TestSplitFetchCoversEveryRowOnce(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	dir := t.TempDir()
	whole := writeParquet(t, filepath.Join(dir, "a.parquet"), 0, 20000) // 10 row groups
	b.srv.Put(t, "data", "one/a.parquet", whole)
	b.srv.Put(t, "data", "many/a.parquet", whole)
	b.srv.Put(t, "data", "many/b.parquet", writeParquet(t, filepath.Join(dir, "b.parquet"), 20000, 26000))
	b.srv.Put(t, "data", "many/c.parquet", writeParquet(t, filepath.Join(dir, "c.parquet"), 26000, 26001))
	want := ducktest.Rows(t, "SELECT * FROM read_parquet(['"+filepath.Join(dir, "a.parquet")+"', '"+filepath.Join(dir, "b.parquet")+"', '"+filepath.Join(dir, "c.parquet")+"'])")

	for _, tc := range []struct {
		uri  string
		n    int
		want []string
	}{
		{"s3://data/one/a.parquet", 2, nil},
		{"s3://data/one/a.parquet", 3, nil},
		{"s3://data/one/a.parquet", 10, nil},
		{"s3://data/many/", 4, want},
		{"s3://data/many/*.parquet", 2, want},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.uri, tc.n), func(t *testing.T) {
			src, err := c.OpenSource(context.Background(), tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			sf := src.(*s3.Source)
			splits, err := sf.SplitFetch(context.Background(), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(splits) < 2 || len(splits) > tc.n {
				t.Fatalf("%d splits, want 2..%d", len(splits), tc.n)
			}
			var got []string
			for i, sp := range splits {
				fs, err := sf.FetchSplit(context.Background(), sp, t.TempDir())
				if err != nil {
					t.Fatalf("fetch split %d: %v", i, err)
				}
				if fs.Format != kalla.FormatParquet {
					t.Fatalf("split %d is %s", i, fs.Format)
				}
				rows := ducktest.Rows(t, "SELECT * FROM read_parquet('"+fs.Pattern+"', union_by_name = true)")
				if len(rows) == 0 {
					t.Errorf("split %d holds no row", i)
				}
				got = append(got, rows...)
			}
			sort.Strings(got)
			expect := tc.want
			if len(expect) == 0 {
				expect = ducktest.Rows(t, "SELECT * FROM '"+filepath.Join(dir, "a.parquet")+"'")
			}
			kallatest.SameRows(t, "rows of all splits", got, expect)
		})
	}
}

// Every split reads a part: the bytes GET fetches add up to about the
// object once, not once per split.
func TestSplitFetchReadsOnlyItsRowGroups(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	whole := writeParquet(t, filepath.Join(t.TempDir(), "a.parquet"), 0, 40000)
	b.srv.Put(t, "data", "a.parquet", whole)
	src, err := c.OpenSource(context.Background(), "s3://data/a.parquet")
	if err != nil {
		t.Fatal(err)
	}
	sf := src.(*s3.Source)
	splits, err := sf.SplitFetch(context.Background(), 4)
	if err != nil || len(splits) != 4 {
		t.Fatalf("%d splits, %v; want 4", len(splits), err)
	}
	for i, sp := range splits {
		before := strings.Count(b.logs.String(), "s3 source split fetched")
		if _, err := sf.FetchSplit(context.Background(), sp, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		line := lastLine(b.logs.String(), "s3 source split fetched")
		var n int64
		if _, err := fmt.Sscanf(field(line, "bytes"), "%d", &n); err != nil || strings.Count(b.logs.String(), "s3 source split fetched") != before+1 {
			t.Fatalf("no fetch log line for split %d: %q", i, line)
		}
		if n > int64(len(whole))/2 {
			t.Errorf("split %d fetched %d of the object's %d bytes", i, n, len(whole))
		}
	}
}

func TestSplitFetchDoesNotCut(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	dir := t.TempDir()
	b.srv.Put(t, "data", "small.parquet", writeParquet(t, filepath.Join(dir, "s.parquet"), 0, 10)) // one row group
	b.srv.Put(t, "data", "in.csv", csvRows(5000))
	ducktest.Query(t, "COPY (SELECT 1 AS other) TO '"+filepath.Join(dir, "o.parquet")+"' (FORMAT parquet)")
	other, _ := os.ReadFile(filepath.Join(dir, "o.parquet"))
	b.srv.Put(t, "data", "mixed/a.parquet", writeParquet(t, filepath.Join(dir, "m.parquet"), 0, 10000))
	b.srv.Put(t, "data", "mixed/b.parquet", other)
	for _, uri := range []string{"s3://data/small.parquet", "s3://data/in.csv", "s3://data/mixed/"} {
		src, err := c.OpenSource(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		splits, err := src.(*s3.Source).SplitFetch(context.Background(), 4)
		if err != nil || len(splits) > 1 {
			t.Errorf("%s: %d splits, %v; want none", uri, len(splits), err)
		}
	}
	// A missing object is the job's error, naming it.
	src, _ := c.OpenSource(context.Background(), "s3://data/nope.parquet")
	if _, err := src.(*s3.Source).SplitFetch(context.Background(), 4); err == nil || !strings.Contains(err.Error(), "nope.parquet") {
		t.Errorf("missing object: %v", err)
	}
}

func lastLine(logs, substr string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}

// field returns the value of key=value in a text log line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// A plan validates a job against the columns alone: FetchSchema brings
// each Parquet object's footer as a file with its columns and no row.
func TestFetchSchemaHasColumnsNoRows(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	dir := t.TempDir()
	local := filepath.Join(dir, "a.parquet")
	b.srv.Put(t, "data", "p/a.parquet", writeParquet(t, local, 0, 10000))
	b.srv.Put(t, "data", "p/b.parquet", writeParquet(t, filepath.Join(dir, "b.parquet"), 10000, 10001))
	b.srv.Put(t, "data", "in.csv", csvRows(10))
	for _, uri := range []string{"s3://data/p/a.parquet", "s3://data/p/"} {
		src, _ := c.OpenSource(context.Background(), uri)
		fs, err := src.(*s3.Source).FetchSchema(context.Background(), t.TempDir())
		if err != nil || fs == nil {
			t.Fatalf("%s: %v, %v", uri, fs, err)
		}
		cols := "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('%s', union_by_name = true))"
		kallatest.SameRows(t, uri+" columns", ducktest.Rows(t, fmt.Sprintf(cols, fs.Pattern)), ducktest.Rows(t, fmt.Sprintf(cols, local)))
		if n := ducktest.Rows(t, "SELECT count(*) FROM read_parquet('"+fs.Pattern+"')"); n[0] != "0" {
			t.Errorf("%s: the schema files hold %s rows", uri, n[0])
		}
	}
	src, _ := c.OpenSource(context.Background(), "s3://data/in.csv")
	if fs, err := src.(*s3.Source).FetchSchema(context.Background(), t.TempDir()); fs != nil || err != nil {
		t.Errorf("CSV: %v, %v; want nothing", fs, err)
	}
}
