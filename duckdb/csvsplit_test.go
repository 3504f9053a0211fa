package duckdb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// splitCSV is a CSV file of rows whose notes hold quoted newlines, quotes
// and delimiters at varying places, codes with leading zeros, amounts of
// two and three decimals and dates in day/month/year.
func splitCSV(from, to int) string {
	var b strings.Builder
	b.WriteString("id,code,amount,note,day\n")
	for i := from; i <= to; i++ {
		note := strings.Repeat("n", i%7)
		switch i % 5 {
		case 0:
			note = `"` + note + "\nline two\"" // a quoted newline
		case 1:
			note = `"say ""` + note + `"", then, go"`
		case 2:
			note = "\"\n" + note + "\r\n\""
		}
		amount := fmt.Sprintf("%d.%02d", i, i%100)
		if i%9 == 0 {
			amount = fmt.Sprintf("%d.%03d", i, i%1000)
		}
		fmt.Fprintf(&b, "%d,%03d,%s,%s,%02d/%02d/2024\n", i, i%1000, amount, note, 1+i%28, 1+i%12)
	}
	return b.String()
}

// Staging a CSV source in splits (byte ranges of a file, and the files of
// a glob) stages exactly the rows and column types that staging it whole
// does, whatever the number of splits and wherever the cuts fall, with a
// filter applied in each split; a split staged twice (a retried task) is
// staged once. With a typing sample of 5 rows, the amounts' third decimal
// (every ninth row) comes after it: the plan types from every value before
// cutting, so every cut gets DECIMAL(18,3).
func TestCSVSplitStagesLikeWhole(t *testing.T) {
	t.Parallel()
	for _, sample := range []int64{0, 5} {
		t.Run(fmt.Sprint("sample ", sample), func(t *testing.T) {
			t.Parallel()
			testCSVSplitStagesLikeWhole(t, sample)
		})
	}
}

func testCSVSplitStagesLikeWhole(t *testing.T, sample int64) {
	b := setup(t, duckdb.Config{Threads: 2, MinCSVSplitBytes: 1, CSVSampleRows: sample})
	b.write(t, "ledger-1.csv", splitCSV(1, 1500))
	b.write(t, "ledger-2.csv", splitCSV(1501, 1800))
	glob := filepath.Join(b.dir, "ledger-*.csv")
	job := b.job("SELECT l.id AS left_src_id, r.id AS right_src_id FROM left_src l JOIN right_src r ON l.id = r.id", glob, glob, []string{"id"}, []string{"id"})
	job.Sources[0].Filters = []kalla.Filter{{Column: "amount", Op: kalla.OpGte, Value: json.RawMessage(`"12.5"`)}}
	ctx := context.Background()

	r := distributed.NewRunner(b.runner)
	staging, err := file.NewStaging(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	stage := func(t *testing.T, key string, split *kalla.SourceSplit) ([]string, []distributed.StagedColumn, int64) {
		t.Helper()
		st, err := r.Stage(ctx, job, distributed.StageSpec{Side: 0, Hash: "hash(id)", Parts: 3, Dir: filepath.Join(b.dir, key), Split: split})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := distributed.StagedFiles(ctx, staging, []string{key}, -1)
		if err != nil {
			t.Fatal(err)
		}
		files, err := staging.Fetch(ctx, keys, "")
		if err != nil {
			t.Fatal(err)
		}
		return files, st.Columns, st.Rows
	}
	read := func(files []string) []string {
		return ducktest.Rows(t, fmt.Sprintf("SELECT * FROM read_parquet(['%s'])", strings.Join(files, "', '")))
	}
	wholeFiles, wholeCols, wholeRows := stage(t, "whole", nil)
	want := read(wholeFiles)
	if int64(len(want)) != wholeRows || wholeRows < 1000 {
		t.Fatalf("whole source staged %d rows, read back %d", wholeRows, len(want))
	}
	for _, c := range wholeCols {
		if c.Name == "amount" && c.Type != "DECIMAL(18,3)" || c.Name == "code" && c.Type != "VARCHAR" || c.Name == "day" && c.Type != "DATE" {
			t.Errorf("column %s staged as %s", c.Name, c.Type)
		}
	}
	for _, n := range []int{2, 3, 5, 8} {
		t.Run(fmt.Sprint(n, " splits"), func(t *testing.T) {
			plan, err := r.Plan(ctx, job, distributed.PlanSpec{Splits: n})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Splits[0]) != n || len(plan.Splits[1]) != n {
				t.Fatalf("%d and %d splits, want %d", len(plan.Splits[0]), len(plan.Splits[1]), n)
			}
			var files []string
			var rows int64
			for k, sp := range plan.Splits[0] {
				dir := fmt.Sprintf("split%d-%d", n, k)
				if k == 0 {
					// A first attempt of the task, whose executor died after
					// it wrote its files: the retry replaces them.
					stage(t, dir, &sp)
				}
				f, cols, r := stage(t, dir, &sp)
				if !slices.Equal(cols, wholeCols) {
					t.Errorf("split %d staged columns %v, want %v", k, cols, wholeCols)
				}
				files, rows = append(files, f...), rows+r
			}
			if rows != wholeRows {
				t.Errorf("splits staged %d rows, want %d", rows, wholeRows)
			}
			kallatest.SameRows(t, "staged rows", read(files), want)
		})
	}
}

// A source too small for two splits of the minimum size is not split.
func TestCSVSmallNotSplit(t *testing.T) {
	t.Parallel()
	b := setup(t, duckdb.Config{Threads: 2})
	path := b.write(t, "small.csv", splitCSV(1, 200))
	job := b.job("SELECT l.id AS left_src_id, r.id AS right_src_id FROM left_src l JOIN right_src r ON l.id = r.id", path, path, []string{"id"}, []string{"id"})
	plan, err := distributed.NewRunner(b.runner).Plan(context.Background(), job, distributed.PlanSpec{Splits: 4})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Splits[0] != nil || plan.Splits[1] != nil {
		t.Errorf("a %d-byte file was split: %d, %d", len(splitCSV(1, 200)), len(plan.Splits[0]), len(plan.Splits[1]))
	}
}
