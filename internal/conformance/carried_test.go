package conformance

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
	"github.com/kalla-dev/kalla/s3"
)

// The days of the carried kind's runs: day 2 carries day 1's open items,
// which are then carriedAge days old.
const (
	carriedDay1 = "2026-03-01"
	carriedDay2 = "2026-03-11"
	carriedAge  = 10
)

// todayData is day 2's source of the carried kind: typedData's rows under
// other ids, so that nothing carried is sent again and every column is
// typed as on day 1 (a kind that types from values, CSV, needs values).
const todayData = "SELECT id + 100 AS id, * EXCLUDE (id) FROM (" + typedData + ")"

// Carried rows held to the Source contract: typedData, read on day 1 from
// a source kind and left unmatched, is carried into day 2 by
// carry_over.from, from a local result folder or from S3.
func TestCarriedConformance(t *testing.T) {
	for _, base := range []string{"local_csv", "local_parquet", "postgres", "s3_csv", "s3_parquet"} {
		t.Run("carried_"+base, func(t *testing.T) {
			t.Parallel()
			RunCarried(t, carriedKindOf(t, base))
		})
	}
}

// carriedKind is the rows of a source kind carried over from a previous
// run: Put's data set is day 1's source, and day 2 reads it back as open
// items.
type carriedKind struct {
	// Kind is the base kind, named carried_<base>; its Known is the base
	// kind's plus carriedKnown.
	Kind
	// Out returns a new output_path for day 1's run named n, where the
	// runner writes and, through carry_over.from, reads back.
	Out func(t *testing.T, n string) string
	// Outputs registers the output Out needs besides local folders.
	Outputs func(*kalla.Registry[kalla.Output])
	// Local returns a local path of the result file at path, an Out
	// folder's file; nil for a kind whose Out is local.
	Local func(t *testing.T, path string) string
	// Without returns a copy of the result at from without the file name.
	Without func(t *testing.T, from, name string) string
	// Denied is a complete result the runner may not read, with what the
	// error must name.
	Denied func(t *testing.T, from string) (uri string, names []string)
}

// carriedKnown are the subtests where carried rows differ from the
// contract by design.
var carriedKnown = map[string]string{
	"filters": "a source's filters select today's rows only: carried rows were selected by the run that left " +
		"them open and are all carried (filters_today_only checks this)",
	"splits": "carried rows are replaced by primary key and a partition follows the rule's key, so the plan " +
		"partitions a carry-over job only on an equality key between primary-key columns of the sources, and " +
		"never broadcasts one; other carry-over jobs run whole (docs/exceptions.md; plan checks this); " +
		"today's source splits as its kind does in other jobs",
}

// carriedKindOf builds the carried kind over the base kind named base.
func carriedKindOf(t *testing.T, base string) carriedKind {
	var c carriedKind
	ext := base[strings.LastIndex(base, "_")+1:]
	switch base {
	case "local_csv", "local_parquet":
		c.Kind = localKind(t, base, ext)
		// Day 1's result goes where the kind's files are, the folder the
		// allow list admits; a copy anywhere else is denied.
		dir := filepath.Dir(strings.TrimPrefix(c.Put(t, "probe", "SELECT 1 AS id"), "file://"))
		c.Out = func(t *testing.T, n string) string { return filepath.Join(dir, "results", n) }
		c.Denied = func(t *testing.T, from string) (string, []string) {
			return copyResult(t, from, filepath.Join(t.TempDir(), "elsewhere"), ""), []string{"elsewhere"}
		}
	case "postgres":
		c.Kind = postgresKind(t, base)
		out := t.TempDir()
		c.Out = func(t *testing.T, n string) string { return filepath.Join(out, n) }
	case "s3_csv", "s3_parquet":
		srv := kallatest.S3(t)
		c.Kind = s3KindOn(t, base, ext, srv)
		cfg := srv.Config()
		client := s3.New(s3.Config{AWS: &cfg})
		c.Outputs = func(r *kalla.Registry[kalla.Output]) { r.Register(client.OpenOutput, "s3") }
		c.Out = func(t *testing.T, n string) string { return "s3://data/results/" + n }
		c.Local = func(t *testing.T, path string) string {
			local := filepath.Join(t.TempDir(), filepath.Base(path))
			if err := os.WriteFile(local, srv.Get(t, "data", strings.TrimPrefix(path, "s3://data/")), 0o644); err != nil {
				t.Fatal(err)
			}
			return local
		}
		c.Without = func(t *testing.T, from, name string) string {
			to := "results/without-" + name
			prefix := strings.TrimPrefix(from, "s3://data/") + "/"
			for _, key := range srv.Keys(t, "data", prefix) {
				if rest := strings.TrimPrefix(key, prefix); rest != name {
					srv.Put(t, "data", to+"/"+rest, srv.Get(t, "data", key))
				}
			}
			return "s3://data/" + to
		}
		// The kind's "locked" bucket is denied to the test's account.
		c.Denied = func(*testing.T, string) (string, []string) {
			return "s3://locked/results/day1", []string{"s3://locked/results/day1"}
		}
	default:
		t.Fatalf("no carried kind over %s", base)
	}
	if c.Without == nil {
		c.Without = func(t *testing.T, from, name string) string {
			return copyResult(t, from, c.Out(t, "without-"+name), name)
		}
	}
	c.Name = "carried_" + base
	c.Known = maps.Clone(carriedKnown)
	maps.Copy(c.Known, known[base])
	for k, v := range known[base] {
		if strings.HasPrefix(k, "types/") {
			c.Known["empty_today/"+k] = v
			c.Known["empty_today/next_day/"+k] = v
		}
	}
	return c
}

// copyResult copies the files of the local result folder from into to,
// but skip, and returns to.
func copyResult(t *testing.T, from, to, skip string) string {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name() == skip || f.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// RunCarried holds carried rows to the Source contract (see doc.go): day 1
// runs matchNothing over typedData from the base kind, starting a chain;
// day 2 runs it over todayData, carrying day 1's result. What day 2
// leaves unmatched on the left must hold day 1's rows with their declared
// types and values, and their lineage.
func RunCarried(t *testing.T, c carriedKind) {
	c.logs = &logBuffer{}
	c.r = runner(t, c.Kind)
	if c.Outputs != nil {
		c.Outputs(c.r.Outputs)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runner's log:\n%s", c.logs)
		}
	})
	from, day1 := c.day1(t, "day1")
	today := c.Put(t, "today", todayData)
	res, err := c.day2(t, from, today)
	if err != nil {
		t.Fatalf("day 2: %v", err)
	}
	out := parquetOf(res.OutputPaths.UnmatchedLeft)
	carried := withoutLineage(out, "id < 100")
	t.Run("types", func(t *testing.T) { testTypes(t, c.Kind, carried) })
	t.Run("values", func(t *testing.T) { testValues(t, c.Kind, carried) })
	t.Run("lineage", func(t *testing.T) { testLineage(t, res, day1, out) })
	t.Run("empty_today", func(t *testing.T) { testCarriedEmpty(t, c, from, today) })
	t.Run("filters", func(t *testing.T) { c.known(t) })
	t.Run("filters_today_only", func(t *testing.T) { testCarriedFilters(t, c, from, today) })
	t.Run("splits", func(t *testing.T) { c.known(t) })
	t.Run("plan", func(t *testing.T) { testCarriedPlan(t, c, from, today) })
	t.Run("errors", func(t *testing.T) { testCarriedErrors(t, c, from, today) })
}

// withoutLineage is the rows of the table expression from that meet where,
// without the lineage columns: the columns of the data set.
func withoutLineage(from, where string) string {
	return fmt.Sprintf("(SELECT * EXCLUDE (%s) FROM %s WHERE %s)", strings.Join(kalla.LineageColumns, ", "), from, where)
}

// day1 runs matchNothing over typedData, put as name, on carriedDay1 as
// the first run of a chain, into a new result folder: it returns the
// folder and the run's id.
func (c carriedKind) day1(t *testing.T, name string) (from, runID string) {
	t.Helper()
	job := matchNothing(t, c.Put(t, name, typedData))
	job.OutputPath = c.Out(t, name)
	job.CarryOver = &kalla.CarryOver{AsOf: carriedDay1}
	res, err := c.r.Run(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("day 1: %v", err)
	}
	return job.OutputPath, res.RunID
}

// day2 runs matchNothing over the source today on carriedDay2, carrying
// the result at from.
func (c carriedKind) day2(t *testing.T, from, today string, filters ...kalla.Filter) (*kalla.Result, error) {
	t.Helper()
	return c.r.Run(context.Background(), c.day2Job(t, from, today, filters...), nil)
}

func (c carriedKind) day2Job(t *testing.T, from, today string, filters ...kalla.Filter) *kalla.Job {
	job := matchNothing(t, today, filters...)
	job.CarryOver = &kalla.CarryOver{From: from, AsOf: carriedDay2}
	return job
}

// testLineage: every carried row says it was first seen by day 1's run on
// day 1, is open for the second run and carriedAge days old; today's rows
// are first seen today; the summary counts every carried row, none
// cleared or replaced.
func testLineage(t *testing.T, res *kalla.Result, day1, out string) {
	types := map[string]string{}
	for _, row := range ducktest.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+out+")") {
		name, typ, _ := strings.Cut(row, "|")
		types[name] = typ
	}
	for col, typ := range map[string]string{kalla.FirstSeenRunColumn: "VARCHAR", kalla.FirstSeenAtColumn: "DATE",
		kalla.RunsOpenColumn: "INTEGER", kalla.AgeDaysColumn: "INTEGER"} {
		if types[col] != typ {
			t.Errorf("lineage column %s is %q, want %s", col, types[col], typ)
		}
	}
	cols := strings.Join(kalla.LineageColumns, ", ")
	got := ducktest.Rows(t, fmt.Sprintf("SELECT id, %s FROM %s", cols, out))
	want := ducktest.Rows(t, fmt.Sprintf(`SELECT id, '%s', DATE '%s', 2, %d FROM (%s)
		UNION ALL SELECT id, '%s', DATE '%s', 1, 0 FROM (%s)`,
		day1, carriedDay1, carriedAge, typedData, res.RunID, carriedDay2, todayData))
	kallatest.SameRows(t, "id and lineage of day 2's open items", got, want)
	n := int64(len(ducktest.Rows(t, typedData)))
	co := res.CarryOver
	switch {
	case co == nil:
		t.Fatalf("no carry_over in the summary")
	case co.FromRunID != day1 || co.AsOf != carriedDay2:
		t.Errorf("carry_over from run %q as of %q, want %q as of %s", co.FromRunID, co.AsOf, day1, carriedDay2)
	case co.Carried.Left != n || co.Cleared.Left != 0 || co.Replaced.Left != 0 || co.Expired.Left != 0:
		t.Errorf("carry_over left: carried %d, cleared %d, replaced %d, expired %d; want %d carried, none else",
			co.Carried.Left, co.Cleared.Left, co.Replaced.Left, co.Expired.Left, n)
	}
}

// testCarriedEmpty: with today's source empty, what day 2 leaves open is
// day 1's rows, in their declared types with their values; and the next
// day, whose source has rows again, carries them in those types.
func testCarriedEmpty(t *testing.T, c carriedKind, from, today string) {
	job := c.day2Job(t, from, c.Put(t, "today_empty", typedData+" WHERE false"))
	job.OutputPath = c.Out(t, "empty_day")
	res, err := c.r.Run(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("day 2: %v", err)
	}
	file := res.OutputPaths.UnmatchedLeft
	if c.Local != nil {
		file = c.Local(t, file)
	}
	out := withoutLineage(parquetOf(file), "true")
	t.Run("types", func(t *testing.T) { testTypes(t, c.Kind, out) })
	t.Run("values", func(t *testing.T) { testValues(t, c.Kind, out) })
	t.Run("next_day", func(t *testing.T) {
		res, err := c.day2(t, job.OutputPath, today)
		if err != nil {
			t.Fatalf("day 3: %v", err)
		}
		out := withoutLineage(parquetOf(res.OutputPaths.UnmatchedLeft), "id < 100")
		t.Run("types", func(t *testing.T) { testTypes(t, c.Kind, out) })
		t.Run("values", func(t *testing.T) { testValues(t, c.Kind, out) })
	})
}

// testCarriedFilters: a filter on day 2's source keeps today's rows its
// SQL meaning keeps and every carried row.
func testCarriedFilters(t *testing.T, c carriedKind, from, today string) {
	pick := map[string]bool{"text_eq": true, "text_eq_empty": true, "number_gt": true, "date_between": true,
		"timestamptz_gte": true, "text_like_newline": true, "boolean_in": true}
	for _, fc := range filterCases {
		if !pick[fc.name] {
			continue
		}
		t.Run(fc.name, func(t *testing.T) {
			res, err := c.day2(t, from, today, fc.filter)
			if err != nil {
				t.Fatalf("day 2: %v", err)
			}
			got := ducktest.Rows(t, "SELECT id FROM "+parquetOf(res.OutputPaths.UnmatchedLeft))
			want := ducktest.Rows(t, fmt.Sprintf("SELECT id FROM (%s) UNION ALL SELECT id FROM (%s) WHERE %s", typedData, todayData, fc.where))
			kallatest.SameRows(t, "ids", got, want)
		})
	}
}

// testCarriedPlan: the cluster's plan partitions a carry-over job joined
// on both sources' primary keys (l.id = r.rid), with the as_of every task
// then uses, and runs whole one it could only broadcast.
func testCarriedPlan(t *testing.T, c carriedKind, from, today string) {
	r := distributed.NewRunner(c.r)
	plan, err := r.Plan(context.Background(), c.day2Job(t, from, today), distributed.PlanSpec{Splits: 4})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Mode != distributed.SplitPartition || plan.Reason != "equality key id = rid" || plan.AsOf != carriedDay2 {
		t.Errorf("plan %s (%s) as of %q, want %s on the primary keys as of %s", plan.Mode, plan.Reason, plan.AsOf, distributed.SplitPartition, carriedDay2)
	}
	job := c.day2Job(t, from, today)
	job.MatchSQL = "SELECT l.id, r.rid FROM left_src l JOIN right_src r ON l.id IS NOT DISTINCT FROM r.rid"
	if plan, err = r.Plan(context.Background(), job, distributed.PlanSpec{Splits: 4}); err != nil {
		t.Fatalf("plan without an equality key: %v", err)
	}
	if plan.Mode != distributed.SplitSingle || !strings.Contains(plan.Reason, "carry-over job is never broadcast") {
		t.Errorf("plan %s (%s) without an equality key, want %s for carry_over", plan.Mode, plan.Reason, distributed.SplitSingle)
	}
	// A CSV day with no values types its columns from the carried rows,
	// which the stage tasks of a split job do not read: it runs whole.
	if !strings.HasSuffix(c.Name, "csv") {
		return
	}
	if plan, err = r.Plan(context.Background(), c.day2Job(t, from, c.Put(t, "today_empty_plan", typedData+" WHERE false")), distributed.PlanSpec{Splits: 4}); err != nil {
		t.Fatalf("plan of an empty day: %v", err)
	}
	if plan.Mode != distributed.SplitSingle || !strings.Contains(plan.Reason, "takes its type from the carried rows") {
		t.Errorf("plan %s (%s) of an empty CSV day, want %s", plan.Mode, plan.Reason, distributed.SplitSingle)
	}
}
