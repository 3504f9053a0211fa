package conformance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// Kind is one source kind under the conformance suite: how to put a data
// set where that kind reads it, and how to open it.
type Kind struct {
	Name string
	// Register adds the kind's opener to a Runner's registry, configured
	// as a test needs (an S3 client for the test server, an allow list).
	Register func(*kalla.Registry[kalla.Source])
	// Put stores the data set that query (DuckDB SQL) selects, under name,
	// in the kind's form, and returns the source URI of it.
	Put func(t *testing.T, name, query string) string
	// Bad lists sources that must fail: missing, denied and (where the
	// kind has such a form) malformed ones.
	Bad []BadSource
	// Secrets must never appear in an error or in the runner's log.
	Secrets []string
	// Stall, when the kind can do it, makes the next read of the data set
	// stored as name stall on the server once it is underway: started is
	// closed then; release ends the stall (call it once).
	Stall func(t *testing.T, name string) (started <-chan struct{}, release func())
	// Splits says whether the kind splits today (into at least two splits
	// for the large data set); one that does not is read as one split.
	Splits bool
	// Known maps a subtest name (as in t.Name() after the kind) to a known
	// difference of this kind: that subtest is skipped with it.
	Known map[string]string

	// r runs the suite's jobs: one engine for the kind's subtests; logs
	// holds everything it logged, at debug level.
	r    *kalla.Runner
	logs *logBuffer
}

// BadSource is a source URI a job must refuse.
type BadSource struct {
	// Class is "missing", "denied" or "malformed"; What says which form
	// of it (file, key, bucket, password).
	Class, What string
	URI         string
	// Names are what the error must name the source by.
	Names []string
}

// known skips t when its subtest is a known difference of k.
func (k Kind) known(t *testing.T) {
	t.Helper()
	name := t.Name()
	if i := strings.Index(name, "/"+k.Name+"/"); i >= 0 {
		name = name[i+len(k.Name)+2:]
	}
	if why, ok := k.Known[name]; ok {
		t.Skip("known difference: " + why)
	}
}

// RunSource holds kind k to the Source contract (see doc.go): the same
// rows, types and values, filters, splits, errors and cancellation as
// every other kind, all through the path a job takes.
func RunSource(t *testing.T, k Kind) {
	k.logs = &logBuffer{}
	k.r = runner(t, k)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runner's log:\n%s", k.logs)
		}
	})
	typed := k.Put(t, "typed", typedData)
	large := k.Put(t, "large", largeData)
	out := runLeft(t, k, typed)
	t.Run("types", func(t *testing.T) { testTypes(t, k, out) })
	t.Run("values", func(t *testing.T) { testValues(t, k, out) })
	t.Run("filters", func(t *testing.T) { testFilters(t, k, typed) })
	t.Run("splits", func(t *testing.T) { testSplits(t, k, large) })
	t.Run("seam", func(t *testing.T) { testSeam(t, k, large) })
	t.Run("errors", func(t *testing.T) { testErrors(t, k) })
	t.Run("cancel", func(t *testing.T) { testCancel(t, k, large) })
}

// typedColumns are the columns of typedData with the engine type every
// kind must give each (DuckDB's spelling, as DESCRIBE shows it).
var typedColumns = []struct{ name, typ, canon string }{
	{"id", "BIGINT", "%s"},
	{"code", "VARCHAR", "%s"},
	{"note", "VARCHAR", "%s"},
	{"amount", "DECIMAL(12,2)", "%s"},
	{"due", "DATE", "%s"},
	// Wall clock with microseconds; an instant as epoch microseconds.
	{"ts", "TIMESTAMP", "strftime(%s, '%%Y-%%m-%%d %%H:%%M:%%S.%%f')"},
	{"ts_tz", "TIMESTAMP WITH TIME ZONE", "epoch_us(%s)"},
	{"paid", "BOOLEAN", "%s"},
	{"ref", "UUID", "%s"},
}

// typedData is the logical data set every kind must carry unchanged: text
// with spaces, quotes, newlines, CR LF, tabs and unicode, an empty string,
// "007", money, dates, wall-clock and zoned times, booleans, UUIDs, and a
// row of NULLs.
const typedData = `SELECT id::BIGINT AS id, code::VARCHAR AS code, note::VARCHAR AS note, amount::DECIMAL(12,2) AS amount,
	due::DATE AS due, ts::TIMESTAMP AS ts, ts_tz::TIMESTAMPTZ AS ts_tz, paid::BOOLEAN AS paid, ref::UUID AS ref
FROM (VALUES
	(1, '007', 'plain', 10.50, '2026-01-31', '2026-01-31 08:00:00', '2026-01-31 08:00:00+00', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
	(2, '7', '  spaces, "quotes", a ''single'' one  ', -1234567890.12, '2026-02-28', '2026-03-01 12:34:56.789012', '2026-03-01 12:34:56.789012+02', false, '00000000-0000-0000-0000-000000000000'),
	(3, 'abc', 'line one' || chr(10) || 'line two', 0.00, '1970-01-01', '1999-12-31 23:59:59', '2000-01-01 00:00:00+00', true, 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
	(4, 'ünïcødé ✓', 'tab' || chr(9) || 'ünïcødé ✓ 🙂', 0.01, '2026-12-31', '2026-06-15 00:00:00.000001', '2026-06-15 23:59:59.999999-05', false, '123e4567-e89b-12d3-a456-426614174000'),
	(5, '', '', 99999.99, '2026-02-01', '2026-02-01 12:00:00', '2026-02-01 12:00:00+00', true, 'c0ffee00-0000-4000-8000-000000000001'),
	(6, 'b', 'carriage' || chr(13) || chr(10) || 'return', 10.50, '2026-01-15', '2026-01-15 09:30:00', '2026-01-15 09:30:00+00', false, 'c0ffee00-0000-4000-8000-000000000002'),
	(7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) v(id, code, note, amount, due, ts, ts_tz, paid, ref)`

// largeRows is the size of largeData: enough for every splitting kind to
// cut it (with the small split sizes TestMain sets) and for a read that a
// cancellation must interrupt.
const largeRows = 50000

// largeData has quoted newlines in every tenth row, so that a CSV cut at
// byte offsets must find record boundaries, and empty strings.
var largeData = fmt.Sprintf(`SELECT i::BIGINT AS id,
	CASE WHEN i %% 10 = 0 THEN 'row ' || i || chr(10) || '"second" line' WHEN i %% 7 = 0 THEN '' ELSE 'row ' || i END AS note,
	(i %% 100000 / 100)::DECIMAL(12,2) AS amount, DATE '2026-01-01' + (i %% 365)::INTEGER AS due
FROM range(1, %d) r(i)`, largeRows+1)

// logBuffer keeps the lines a Runner logs, for the check that no secret
// reaches them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runner wires the real engine with k's opener, a local output and a
// local right-hand source, as cmd/kallad does.
func runner(t *testing.T, k Kind) *kalla.Runner {
	t.Helper()
	return wire(t, slog.New(slog.NewTextHandler(k.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), k.Register)
}

// matchNothing is the job every test runs: the source under test on the
// left, a right side that matches no row, so that every left row that
// passes filters comes out in unmatched_left with all its columns.
func matchNothing(t *testing.T, uri string, filters ...kalla.Filter) *kalla.Job {
	t.Helper()
	dir := t.TempDir()
	return &kalla.Job{
		MatchSQL: "SELECT l.id, r.rid FROM left_src l JOIN right_src r ON l.id = r.rid",
		Sources: []kalla.SourceSpec{{Alias: "left_src", URI: uri, Filters: filters},
			{Alias: "right_src", URI: "file://" + rightCSV}},
		OutputPath:  filepath.Join(dir, "out"),
		PrimaryKeys: map[string][]string{"left_src": {"id"}, "right_src": {"rid"}},
	}
}

// runLeft runs matchNothing and returns the unmatched_left file as a
// DuckDB table expression.
func runLeft(t *testing.T, k Kind, uri string, filters ...kalla.Filter) string {
	t.Helper()
	res, err := k.r.Run(context.Background(), matchNothing(t, uri, filters...), nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return parquetOf(res.OutputPaths.UnmatchedLeft)
}

// testTypes: every column comes out with the type the data set declares.
// out is the unmatched_left file of a job over typedData.
func testTypes(t *testing.T, k Kind, out string) {
	got := map[string]string{}
	for _, row := range ducktest.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+out+")") {
		name, typ, _ := strings.Cut(row, "|")
		got[name] = typ
	}
	if len(got) != len(typedColumns) {
		t.Errorf("columns %v, want %d", got, len(typedColumns))
	}
	for _, c := range typedColumns {
		t.Run(c.name, func(t *testing.T) {
			k.known(t)
			if got[c.name] != c.typ {
				t.Errorf("column %s is %s, want %s", c.name, got[c.name], c.typ)
			}
		})
	}
}

// testValues: every value comes out as the data set holds it, compared
// column by column after a cast to the declared type (so that a type
// difference, reported by testTypes, does not hide a value difference; a
// value the cast refuses shows as NULL).
func testValues(t *testing.T, k Kind, out string) {
	got := columnValues(t, out)
	want := columnValues(t, "("+typedData+")")
	for _, c := range typedColumns {
		t.Run(c.name, func(t *testing.T) {
			k.known(t)
			kallatest.SameRows(t, c.name, got[c.name], want[c.name])
		})
	}
}

// columnValues reads the canonical text of every column of typedColumns
// from the table expression from, in one query: "id|value" rows, sorted,
// per column.
func columnValues(t *testing.T, from string) map[string][]string {
	t.Helper()
	var parts []string
	for _, c := range typedColumns {
		expr := fmt.Sprintf(c.canon, fmt.Sprintf("TRY_CAST(%s AS %s)", c.name, c.typ))
		parts = append(parts, fmt.Sprintf("SELECT '%s', id, (%s)::VARCHAR FROM %s", c.name, expr, from))
	}
	out := map[string][]string{}
	for _, row := range ducktest.Rows(t, strings.Join(parts, " UNION ALL ")) {
		col, rest, _ := strings.Cut(row, "|")
		out[col] = append(out[col], rest)
	}
	return out
}
