package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

// The rules variants run issue 13's waterfall on the generated data: an
// exact reference match, then a both-sides exclusive match on the customer,
// the amount within 0.50 and the payment date, ranked by amount and date
// gap, then a right-side exclusive rule giving each payment left over the
// invoice of its customer nearest in date. The generated payments name the
// customer as payer 'CUST-<n>' and carry paid_at as a TIMESTAMPTZ, so the
// rules join on that text and take the payment's day in UTC (never the
// session's zone). Their counts are not the generator's design: Kalla's are
// checked rule by rule against the same rules run as plain SQL in DuckDB.

// Names of the rules and of the rules variants.
const (
	ruleExact = "exact_ref"
	ruleNear  = "amount_date"
	ruleSplit = "split_payments"

	kallaRulesVariant = "kalla-rules"
	rawRulesVariant   = "raw-rules"
	joinRulesVariant  = "kalla-rules-join"
)

// benchPaidOn is the payment's day in UTC, whatever the session's zone.
const benchPaidOn = "CAST(r.paid_at AT TIME ZONE 'UTC' AS DATE)"

// benchRules are the rules, best first. The order_by columns are part of
// each rule's result, as exclusive rules require.
var benchRules = []kalla.Rule{
	{Name: ruleExact, MatchSQL: "SELECT l.invoice_id, r.payment_id, l.amount AS invoice_amount, r.amount AS paid_amount " +
		"FROM left_src l JOIN right_src r ON r.invoice_ref = l.invoice_id AND r.amount = l.amount"},
	{Name: ruleNear, MatchSQL: "SELECT l.invoice_id, r.payment_id, abs(l.amount - r.amount) AS amount_diff, " +
		"abs(date_diff('day', l.invoice_date, " + benchPaidOn + ")) AS day_gap " +
		"FROM left_src l JOIN right_src r ON r.payer = 'CUST-' || l.customer_id AND tolerance_match(l.amount, r.amount, 0.50) " +
		"AND " + benchPaidOn + " BETWEEN l.invoice_date - INTERVAL 5 DAY AND l.invoice_date + INTERVAL 45 DAY",
		Exclusive: &kalla.Exclusive{Sides: []string{benchdata.LeftAlias, benchdata.RightAlias}, OrderBy: []string{"amount_diff", "day_gap"}}},
	{Name: ruleSplit, MatchSQL: "SELECT l.invoice_id, r.payment_id, abs(date_diff('day', l.invoice_date, " + benchPaidOn + ")) AS day_gap " +
		"FROM left_src l JOIN right_src r ON r.payer = 'CUST-' || l.customer_id",
		Exclusive: &kalla.Exclusive{Sides: []string{benchdata.RightAlias}, OrderBy: []string{"day_gap"}}},
}

// rulesJob is the rules job over the invoices at leftURI and the payments at
// rightURI; with joinOnly no rule is exclusive, so each rule's time is its
// join alone.
func rulesJob(leftURI, rightURI, outputPath string, joinOnly bool) kalla.Job {
	job := benchdata.Job(leftURI, rightURI, outputPath)
	job.MatchSQL = ""
	for _, r := range benchRules {
		if joinOnly {
			r.Exclusive = nil
		}
		job.Rules = append(job.Rules, r)
	}
	return job
}

// rulesVariants are the variants of the rules job: Kalla, the same rules as
// hand-written DuckDB SQL, and Kalla with no rule exclusive (the joins
// alone, to tell the assignment's time from its join's).
func rulesVariants(b *benchChild, d *benchdata.Set) ([]*benchVariant, error) {
	var jobs [2]string
	for i, name := range []string{kallaRulesVariant, joinRulesVariant} {
		job := rulesJob(d.InvoicesParquet, d.PaymentsParquet, filepath.Join(b.dir, "out", name), i == 1)
		data, err := kalla.MarshalIndent(&job)
		if err != nil {
			return nil, err
		}
		jobs[i] = filepath.Join(b.dir, "job-"+name+".json")
		if err := os.WriteFile(jobs[i], data, 0o600); err != nil {
			return nil, err
		}
	}
	return []*benchVariant{
		{Name: kallaRulesVariant, Baseline: rawRulesVariant,
			Note: "issue 13's three rules (exact_ref; amount_date exclusive both sides; split_payments exclusive right side), Parquet files, end to end",
			run:  func(ctx context.Context) (benchRun, error) { return b.runKalla(ctx, jobs[0]) }},
		{Name: rawRulesVariant, Baseline: rawRulesVariant,
			Note: "the same rules as hand-written DuckDB SQL: waterfall by anti-joins, mutual-best rounds, QUALIFY, 3 Parquet outputs",
			run:  func(ctx context.Context) (benchRun, error) { return b.runRawRules(ctx, d) }},
		{Name: joinRulesVariant, Baseline: rawRulesVariant, compare: compareJoinOnly,
			Note: "kalla-rules with no rule exclusive: each rule's time is its join alone (counts differ by design)",
			run:  func(ctx context.Context) (benchRun, error) { return b.runKalla(ctx, jobs[1]) }},
	}, nil
}

// compareRules says how run differs from the baseline run base: the three
// counts and each rule's rows in, candidates, matches and ties must be
// equal.
func compareRules(run, base benchRun) []string {
	var diffs []string
	if run.Counts != base.Counts {
		diffs = append(diffs, fmt.Sprintf("%s, baseline %s", run.Counts, base.Counts))
	}
	if len(run.Rules) != len(base.Rules) {
		return append(diffs, fmt.Sprintf("%d rules, baseline %d", len(run.Rules), len(base.Rules)))
	}
	for i, r := range run.Rules {
		b := base.Rules[i]
		r.ElapsedMS, b.ElapsedMS = 0, 0
		if r != b {
			diffs = append(diffs, fmt.Sprintf("rule %s: %+v, baseline %+v", r.Name, r, b))
		}
	}
	return diffs
}

// compareJoinOnly checks the variant with no rule exclusive: its first two
// rules see the same rows and find the same candidates as the baseline's,
// and keep them all.
func compareJoinOnly(run, base benchRun) []string {
	if len(run.Rules) != len(base.Rules) || len(run.Rules) < 2 {
		return []string{fmt.Sprintf("%d rules, baseline %d", len(run.Rules), len(base.Rules))}
	}
	var diffs []string
	for i := range 2 {
		r, b := run.Rules[i], base.Rules[i]
		if r.LeftIn != b.LeftIn || r.RightIn != b.RightIn || r.Candidates != b.Candidates || r.Matched != r.Candidates {
			diffs = append(diffs, fmt.Sprintf("rule %s: %+v, baseline %+v", r.Name, r, b))
		}
	}
	return diffs
}

// summarizeRules checks every run of a variant with a baseline against the
// baseline's best run, and sets its ratio to the baseline's best time.
func (r *benchReport) summarizeRules() {
	byName := map[string]*benchVariant{}
	for _, v := range r.Variants {
		byName[v.Name] = v
	}
	for _, v := range r.Variants {
		if v.Baseline == "" || len(v.Runs) == 0 {
			continue
		}
		base := byName[v.Baseline]
		if base == nil || len(base.Runs) == 0 {
			r.Mismatches = append(r.Mismatches, fmt.Sprintf("%s: its baseline %s did not run", v.Name, v.Baseline))
			v.VsRaw = 0
			continue
		}
		compare := v.compare
		if compare == nil {
			compare = compareRules
		}
		for i, run := range v.Runs {
			for _, d := range compare(run, *base.bestRun()) {
				r.Mismatches = append(r.Mismatches, fmt.Sprintf("%s run %d against %s: %s", v.Name, i+1, base.Name, d))
			}
		}
		v.VsRaw = v.Best / base.Best
	}
}

// designMismatch reports whether a variant without a baseline reported
// counts other than the generator's design.
func (r *benchReport) designMismatch() bool {
	for _, v := range r.Variants {
		for _, run := range v.Runs {
			if v.Baseline == "" && run.Counts != r.Expected {
				return true
			}
		}
	}
	return false
}

// printRules prints, for the rules variants, each rule's counts and time,
// and how the exclusive rules' assignment compares with their join.
func (r *benchReport) printRules(w io.Writer) {
	byName := map[string]*benchVariant{}
	for _, v := range r.Variants {
		if best := v.bestRun(); best != nil && len(best.Rules) > 0 {
			byName[v.Name] = v
		}
	}
	if len(byName) == 0 {
		return
	}
	fmt.Fprintf(w, "\nrules (best run of each variant; kalla-rules and raw-rules must agree on every count):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant          \trule            \tleft_in\tright_in\tcandidates\tmatched\tties\tseconds\t")
	for _, name := range []string{kallaRulesVariant, rawRulesVariant, joinRulesVariant} {
		v := byName[name]
		if v == nil {
			continue
		}
		for _, rc := range v.bestRun().Rules {
			fmt.Fprintf(tw, "%-17s\t%-16s\t%d\t%d\t%d\t%d\t%d\t%.2f\t\n", name, rc.Name, rc.LeftIn, rc.RightIn, rc.Candidates, rc.Matched, rc.Ties, float64(rc.ElapsedMS)/1000)
		}
	}
	tw.Flush()
	for _, line := range r.assignmentLines() {
		fmt.Fprintln(w, "  "+line)
	}
}

// assignmentLines compare, for each exclusive rule, the time its assignment
// adds with the time of its join (issue 13's target: at most 1.5x): in
// Kalla, the rule's time minus the same rule's time when it is not
// exclusive; in raw DuckDB, the timed statements.
func (r *benchReport) assignmentLines() []string {
	var kallaRun, joinRun, rawRun *benchRun
	for _, v := range r.Variants {
		switch v.Name {
		case kallaRulesVariant:
			kallaRun = v.bestRun()
		case joinRulesVariant:
			joinRun = v.bestRun()
		case rawRulesVariant:
			rawRun = v.bestRun()
		}
	}
	var lines []string
	for i, rule := range benchRules {
		if rule.Exclusive == nil {
			continue
		}
		if kallaRun != nil && joinRun != nil && i < len(kallaRun.Rules) && i < len(joinRun.Rules) {
			all, join := float64(kallaRun.Rules[i].ElapsedMS)/1000, float64(joinRun.Rules[i].ElapsedMS)/1000
			lines = append(lines, fmt.Sprintf("%s in Kalla: %.2fs exclusive, %.2fs as a plain join: assignment %.2fs = %s its join (target <= 1.5x)",
				rule.Name, all, join, all-join, benchRatio(max(all-join, 0)/join)))
		}
		if rawRun != nil {
			var join, assign float64
			for _, p := range rawRun.Phases {
				switch p.Name {
				case rule.Name + " join":
					join = p.Seconds
				case rule.Name + " assign":
					assign = p.Seconds
				}
			}
			if join > 0 {
				lines = append(lines, fmt.Sprintf("%s in raw DuckDB: join %.2fs, assignment %.2fs = %s its join", rule.Name, join, assign, benchRatio(assign/join)))
			}
		}
	}
	return lines
}

// rawRulesChildCommand is the hidden first argument that makes kallabench
// run the raw DuckDB rules variant (rawBenchSpec as JSON in the next
// argument) and print a benchRun as JSON.
const rawRulesChildCommand = "__raw-rules"

// runRawRules runs the raw DuckDB rules variant in a child process.
func (b *benchChild) runRawRules(ctx context.Context, d *benchdata.Set) (benchRun, error) {
	spec := rawBenchSpec{
		Invoices:    d.InvoicesParquet,
		Payments:    d.PaymentsParquet,
		OutDir:      filepath.Join(b.dir, "out", rawRulesVariant),
		MemoryLimit: b.eng.MemoryLimit,
		TempDir:     b.eng.TempDir,
		Threads:     b.eng.Partitions,
	}
	if spec.TempDir == "" {
		spec.TempDir = filepath.Join(b.dir, "raw-spill")
	}
	return b.runChild(ctx, rawRulesChildCommand, spec)
}

// runRawRulesChild is the child side of runRawRules.
func (c *benchCommand) runRawRulesChild(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one JSON argument", rawRulesChildCommand)
	}
	var spec rawBenchSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("decode raw DuckDB spec: %w", err)
	}
	run, err := rawRules(ctx, spec)
	if err != nil {
		fmt.Fprintln(c.Stderr, "kallabench: raw DuckDB rules:", err)
		return err
	}
	return json.NewEncoder(c.Stdout).Encode(run)
}

// rawRules runs the rules as a script of plain DuckDB statements, written
// apart from Kalla's engine: the rows each rule sees are views in a schema
// of their own (the sources anti-joined with the keys taken so far) found
// first on the search_path, so the rule's text is the job's; both-sides
// exclusivity is mutual-best rounds until no pair is left (window minima,
// DELETE of the pairs touching accepted rows); one-side exclusivity is a
// QUALIFY. The candidate pairs are unique, so the order_by columns and the
// two keys rank them totally.
func rawRules(ctx context.Context, spec rawBenchSpec) (benchRun, error) {
	var run benchRun
	conn, done, err := openRaw(ctx, spec, "read_parquet("+benchdata.Quote(spec.Invoices)+")", "read_parquet("+benchdata.Quote(spec.Payments)+")",
		"CREATE TABLE taken_l (invoice_id BIGINT)", "CREATE TABLE taken_r (payment_id BIGINT)")
	if err != nil {
		return run, err
	}
	defer done()
	exec := func(q string) (int64, error) {
		res, err := conn.ExecContext(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
		return res.RowsAffected()
	}
	count := func(from string) (int64, error) {
		var n int64
		err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+from).Scan(&n)
		return n, err
	}
	timed := func(name string, stmts ...string) error {
		start := time.Now()
		for _, q := range stmts {
			if _, err := exec(q); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		run.Phases = append(run.Phases, benchPhase{Name: name, Seconds: time.Since(start).Seconds()})
		return nil
	}
	var parts []string
	for k, rule := range benchRules {
		rc := kalla.RuleCount{Name: rule.Name}
		start := time.Now()
		left, right := benchdata.LeftAlias, benchdata.RightAlias
		if k > 0 {
			schema := fmt.Sprintf("rule%d", k)
			left, right = schema+"."+left, schema+"."+right
			if err := timed(rule.Name+" views",
				"CREATE SCHEMA "+schema,
				"CREATE VIEW "+left+" AS SELECT * FROM main."+benchdata.LeftAlias+" ANTI JOIN main.taken_l t USING (invoice_id)",
				"CREATE VIEW "+right+" AS SELECT * FROM main."+benchdata.RightAlias+" ANTI JOIN main.taken_r t USING (payment_id)",
				"SET search_path = '"+schema+",main'",
			); err != nil {
				return run, err
			}
		}
		if rc.LeftIn, err = count(left); err != nil {
			return run, err
		}
		if rc.RightIn, err = count(right); err != nil {
			return run, err
		}
		cand := fmt.Sprintf("main.cand%d", k)
		if err := timed(rule.Name+" join", "CREATE TABLE "+cand+" AS "+rule.MatchSQL, "SET search_path = 'main'"); err != nil {
			return run, err
		}
		if rc.Candidates, err = count(cand); err != nil {
			return run, err
		}
		kept := cand
		if x := rule.Exclusive; x != nil {
			kept = fmt.Sprintf("kept%d", k)
			order := strings.Join(x.OrderBy, ", ") + ", invoice_id, payment_id"
			var err error
			if len(x.Sides) == 2 {
				err = rawGreedy(exec, count, cand, kept, order, &run, rule.Name)
			} else {
				err = timed(rule.Name+" assign", fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s WHERE payment_id IS NOT NULL "+
					"QUALIFY row_number() OVER (PARTITION BY payment_id ORDER BY %s) = 1", kept, cand, order))
			}
			if err != nil {
				return run, err
			}
		}
		if rc.Matched, err = count(kept); err != nil {
			return run, err
		}
		if _, err := exec("INSERT INTO taken_l SELECT invoice_id FROM " + kept); err != nil {
			return run, err
		}
		if _, err := exec("INSERT INTO taken_r SELECT payment_id FROM " + kept); err != nil {
			return run, err
		}
		rc.ElapsedMS = time.Since(start).Milliseconds()
		run.Rules = append(run.Rules, rc)
		parts = append(parts, fmt.Sprintf("SELECT %s AS %s, * FROM %s", benchdata.Quote(rule.Name), kalla.RuleColumn, kept))
	}

	out := func(name string) string { return benchdata.Quote(filepath.Join(spec.OutDir, name)) }
	writes := []struct {
		name, sql string
		count     *int64
	}{
		{"write matched", "COPY (" + strings.Join(parts, " UNION ALL BY NAME ") + ") TO " + out(kalla.MatchedFile) + " (FORMAT parquet)", &run.Counts.Matched},
		{"anti-join left", "COPY (SELECT * FROM " + benchdata.LeftAlias + " ANTI JOIN taken_l t USING (invoice_id)) TO " + out(kalla.UnmatchedLeftFile) + " (FORMAT parquet)", &run.Counts.UnmatchedLeft},
		{"anti-join right", "COPY (SELECT * FROM " + benchdata.RightAlias + " ANTI JOIN taken_r t USING (payment_id)) TO " + out(kalla.UnmatchedRightFile) + " (FORMAT parquet)", &run.Counts.UnmatchedRight},
	}
	for _, st := range writes {
		start := time.Now()
		if *st.count, err = exec(st.sql); err != nil {
			return run, fmt.Errorf("%s: %w", st.name, err)
		}
		run.Phases = append(run.Phases, benchPhase{Name: st.name, Seconds: time.Since(start).Seconds()})
	}
	return run, nil
}

// rawGreedy writes into kept the pairs of cand that the sequential greedy
// walk in order accepts, by rounds: a pair that is the best remaining pair
// of both its invoice and its payment is accepted by the walk too, so each
// round accepts every such pair and deletes the pairs touching their rows.
// The best remaining pair overall is always one, so every round accepts at
// least one pair and the loop ends.
func rawGreedy(exec func(string) (int64, error), count func(string) (int64, error), cand, kept, order string, run *benchRun, name string) error {
	start := time.Now()
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE live AS SELECT invoice_id AS l, payment_id AS r, row_number() OVER (ORDER BY %s) AS rk FROM %s "+
			"WHERE invoice_id IS NOT NULL AND payment_id IS NOT NULL", order, cand),
		"CREATE TABLE won (l BIGINT, r BIGINT, rk BIGINT)",
	} {
		if _, err := exec(q); err != nil {
			return err
		}
	}
	for {
		n, err := count("live")
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if _, err := exec("INSERT INTO won SELECT l, r, rk FROM live QUALIFY rk = min(rk) OVER (PARTITION BY l) AND rk = min(rk) OVER (PARTITION BY r)"); err != nil {
			return err
		}
		if _, err := exec("DELETE FROM live WHERE l IN (SELECT l FROM won) OR r IN (SELECT r FROM won)"); err != nil {
			return err
		}
	}
	if _, err := exec(fmt.Sprintf("CREATE TABLE %s AS SELECT c.* FROM %s c SEMI JOIN won w ON w.l = c.invoice_id AND w.r = c.payment_id", kept, cand)); err != nil {
		return err
	}
	run.Phases = append(run.Phases, benchPhase{Name: fmt.Sprintf("%s assign", name), Seconds: time.Since(start).Seconds()})
	return nil
}
