package duckdb_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/benchdata"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

// stepLog keeps the "step" of every "explain step" the engine logs, and
// whether a rule's pairs failed.
type stepLog struct {
	mu       sync.Mutex
	steps    []string
	pairsErr bool
}

func (l *stepLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *stepLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *stepLog) WithGroup(string) slog.Handler            { return l }
func (l *stepLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Message == "explain: the rule's pairs failed, it runs as written" {
		l.pairsErr = true
	}
	if r.Message == "explain step" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "step" {
				l.steps = append(l.steps, a.Value.String())
			}
			return true
		})
	}
	return nil
}

// explained is one run of a job: its result, its output files' rows and
// the explain steps it logged.
type explained struct {
	res   *kalla.Result
	files map[string][]string
	log   *stepLog
}

// runExplained runs the job made by mk on a fresh engine, explaining from
// the rules' own pairs or (fromPairs false) by joining the unmatched rows
// again. It must not run in parallel with other tests that explain.
func runExplained(t *testing.T, fromPairs bool, mk func(b *bundle) *kalla.Job) explained {
	t.Helper()
	defer duckdb.SetExplainFromPairs(fromPairs)()
	log := &stepLog{}
	b := setup(t, duckdb.Config{Logger: slog.New(log)})
	res := b.run(t, mk(b))
	files := map[string][]string{}
	for name, path := range map[string]string{"matched": res.OutputPaths.Matched, "left": res.OutputPaths.UnmatchedLeft, "right": res.OutputPaths.UnmatchedRight} {
		files[name] = parquet(t, path, "*")
	}
	return explained{res: res, files: files, log: log}
}

// sameExplained fails unless both runs wrote the same rows and counted the
// same reasons.
func sameExplained(t *testing.T, got, want explained) {
	t.Helper()
	for name, rows := range want.files {
		kallatest.SameRows(t, name, got.files[name], rows)
	}
	if !reflect.DeepEqual(got.res.Reasons, want.res.Reasons) {
		t.Errorf("reasons %+v, want %+v", got.res.Reasons, want.res.Reasons)
	}
	counts := func(r *kalla.Result) [3]int64 {
		return [3]int64{r.MatchedCount, r.UnmatchedLeftCount, r.UnmatchedRightCount}
	}
	if g, w := counts(got.res), counts(want.res); g != w {
		t.Errorf("counts %v, want %v", g, w)
	}
	for i := range want.res.Rules {
		g, w := got.res.Rules[i], want.res.Rules[i]
		g.ElapsedMS, w.ElapsedMS = 0, 0
		if g != w {
			t.Errorf("rule %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestExplainFromPairsBenchmarkShape: the benchmark's job (one rule, a key
// and a tolerance), and a waterfall over the same data (an exact rule with
// no other condition, then an exclusive rule with ties), are explained from
// the rules' own pairs, with no second join of the unmatched rows, and give
// exactly what joining them again gives.
func TestExplainFromPairsBenchmarkShape(t *testing.T) {
	data, err := benchdata.Generate(t.Context(), t.TempDir(), 20000, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]func(b *bundle) *kalla.Job{
		"benchmark": func(b *bundle) *kalla.Job {
			job := benchdata.Job(data.InvoicesParquet, data.PaymentsParquet, filepath.Join(b.dir, "out"))
			job.Explain = true
			return &job
		},
		"waterfall": func(b *bundle) *kalla.Job {
			job := benchdata.Job(data.InvoicesParquet, data.PaymentsParquet, filepath.Join(b.dir, "out"))
			job.MatchSQL = ""
			job.Explain = true
			job.Rules = []kalla.Rule{
				{Name: "exact", MatchSQL: "SELECT i.invoice_id, p.payment_id FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND p.amount = i.amount"},
				{Name: "near", MatchSQL: "SELECT i.invoice_id, p.payment_id, abs(i.amount - p.amount) AS amount_diff FROM left_src i JOIN right_src p " +
					"ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.02)",
					Exclusive: &kalla.Exclusive{Sides: []string{benchdata.LeftAlias}, OrderBy: []string{"amount_diff"}, Ties: kalla.TiesLeaveUnmatched}},
			}
			return &job
		},
	}
	for name, mk := range jobs {
		t.Run(name, func(t *testing.T) {
			fromPairs := runExplained(t, true, mk)
			joined := runExplained(t, false, mk)
			sameExplained(t, fromPairs, joined)
			if !slices.Contains(fromPairs.log.steps, "pairs") || slices.Contains(fromPairs.log.steps, "unmatched") || slices.Contains(fromPairs.log.steps, "heavy") {
				t.Errorf("explained from pairs with the steps %v, want pairs and no second join", fromPairs.log.steps)
			}
			if slices.Contains(joined.log.steps, "pairs") || !slices.Contains(joined.log.steps, "heavy") {
				t.Errorf("joined again with the steps %v", joined.log.steps)
			}
			if got := fromPairs.res.Reasons.Left["outside_rule"] + fromPairs.res.Reasons.Right["outside_rule"]; got == 0 {
				t.Errorf("reasons %+v: the data has rows outside the rule", fromPairs.res.Reasons)
			}
		})
	}
}

// TestExplainFromPairsFallsBack: a rule whose select list must not be
// evaluated over pairs that fail its conditions runs as written and is
// explained by joining the unmatched rows again, with the same results: a
// CAST that only the condition makes safe (the pairs statement fails), and
// a window function (never evaluated over the wider set).
func TestExplainFromPairsFallsBack(t *testing.T) {
	const invoices = "id,ref,amount\nI1,R1,100.00\nI2,R2,200.00\nI3,R3,50.00\n"
	const payments = "pid,ref,amount,memo\nP1,R1,100.00,12\nP2,R2,200.00,n/a\nP3,R3,51.00,7\n"
	for name, tc := range map[string]struct {
		sql, matched string
		pairsErr     bool
	}{
		"guarded cast": {sql: `SELECT i.id, p.pid, CAST(p.memo AS INTEGER) AS memo_n FROM left_src i JOIN right_src p
ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50) WHERE regexp_full_match(p.memo, '[0-9]+')`, matched: "memo|I1|P1|12", pairsErr: true},
		"window": {sql: `SELECT i.id, p.pid, row_number() OVER (ORDER BY i.id) AS n FROM left_src i JOIN right_src p
ON p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50) AND regexp_full_match(p.memo, '[0-9]+')`, matched: "memo|I1|P1|1"},
	} {
		t.Run(name, func(t *testing.T) {
			mk := func(b *bundle) *kalla.Job {
				job := b.job("", b.write(t, "invoices.csv", invoices), b.write(t, "payments.csv", payments), []string{"id"}, []string{"pid"})
				job.Explain = true
				job.Rules = []kalla.Rule{{Name: "memo", MatchSQL: tc.sql}}
				return job
			}
			got := runExplained(t, true, mk)
			sameExplained(t, got, runExplained(t, false, mk))
			kallatest.SameRows(t, "matched", got.files["matched"], []string{tc.matched})
			want := &kalla.ReasonCounts{Left: map[string]int64{"outside_rule": 2}, Right: map[string]int64{"outside_rule": 2}}
			if !reflect.DeepEqual(got.res.Reasons, want) {
				t.Errorf("reasons %+v, want %+v", got.res.Reasons, want)
			}
			if got.log.pairsErr != tc.pairsErr || !slices.Contains(got.log.steps, "heavy") {
				t.Errorf("steps %v, pairs failed %v: want the unmatched rows joined again", got.log.steps, got.log.pairsErr)
			}
		})
	}
}

// TestExplainFromPairsShapes: rules written in other ways are explained
// from their pairs with the same results as joining again: a comma join
// keyed in WHERE, a select list with a star and upper-case aliases, and
// a BETWEEN condition with the primary keys renamed in the select list.
func TestExplainFromPairsShapes(t *testing.T) {
	const invoices = "id,ref,amount\nI1,R1,100.00\nI2,R2,200.00\nI3,R3,50.00\nI4,R4,75.00\nI5,,20.00\n"
	const payments = "pid,ref,amount\nP1,R1,100.40\nP2,R2,201.00\nP3,R9,10.00\nP4,R4,75.00\nP5,R4,75.30\n"
	for name, sql := range map[string]string{
		"comma join": `SELECT i.id, p.pid FROM left_src i, right_src p WHERE p.ref = i.ref AND tolerance_match(i.amount, p.amount, 0.50)`,
		"star":       `SELECT I.*, P.pid FROM left_src I JOIN right_src P ON P.ref = I.ref AND tolerance_match(I.amount, P.amount, 0.50)`,
		"between":    `SELECT i.id AS left_src_id, p.pid AS right_src_pid FROM left_src i JOIN right_src p ON p.ref = i.ref WHERE p.amount BETWEEN i.amount - 0.50 AND i.amount + 0.50`,
	} {
		t.Run(name, func(t *testing.T) {
			mk := func(b *bundle) *kalla.Job {
				job := b.job("", b.write(t, "invoices.csv", invoices), b.write(t, "payments.csv", payments), []string{"id"}, []string{"pid"})
				job.Explain = true
				job.Rules = []kalla.Rule{{Name: "r", MatchSQL: sql}}
				return job
			}
			got := runExplained(t, true, mk)
			sameExplained(t, got, runExplained(t, false, mk))
			if !slices.Contains(got.log.steps, "pairs") || slices.Contains(got.log.steps, "heavy") {
				t.Errorf("steps %v: want the rule's pairs", got.log.steps)
			}
			want := &kalla.ReasonCounts{
				Left:  map[string]int64{"outside_rule": 1, "no_candidate": 1, "null_key": 1},
				Right: map[string]int64{"outside_rule": 1, "no_candidate": 1},
			}
			if !reflect.DeepEqual(got.res.Reasons, want) {
				t.Errorf("reasons %+v, want %+v", got.res.Reasons, want)
			}
		})
	}
}
