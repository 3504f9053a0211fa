package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kalla-dev/kalla"
)

// matchedTable holds the rows of a plain job's match_sql for the writes
// that follow.
const matchedTable = "_kalla_matched"

// Reconcile runs the job's rules and writes the matched rows and the two
// unmatched sets. The unmatched rows are anti-joins of each source against
// the matched keys: a FULL OUTER JOIN carrying the tolerance predicate takes
// hours at a few million rows in DuckDB, the anti-joins seconds.
func (s *Session) Reconcile(ctx context.Context, spec kalla.MatchSpec, dir string, progress func(kalla.Progress)) (kalla.Counts, error) {
	if len(spec.Rules) == 0 {
		return kalla.Counts{}, fmt.Errorf("no rule to run")
	}
	s.sourceRows = map[string]int64{}
	if !spec.Plain() {
		return s.reconcileRules(ctx, spec, dir, progress)
	}
	var c kalla.Counts
	report := func(stage kalla.Stage, p float64, matched *int64) {
		if progress != nil {
			progress(kalla.Progress{Stage: stage, Progress: p, MatchedSoFar: matched})
		}
	}
	rule := spec.Rules[0]
	matched := s.qualified(matchedTable)
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", matched, rule.SQL)); err != nil {
		return c, fmt.Errorf("run match_sql: %w", cleanError(err))
	}
	report(kalla.StageMatching, 1, nil)

	var err error
	if c.Matched, err = s.copyTo(ctx, "SELECT * FROM "+matched, dir, kalla.MatchedFile); err != nil {
		return c, fmt.Errorf("write %s: %w", kalla.MatchedFile, err)
	}
	report(kalla.StageWriting, 1.0/3, &c.Matched)
	if c.UnmatchedLeft, err = s.copyTo(ctx, s.unmatchedSQL(rule.Left), dir, kalla.UnmatchedLeftFile); err != nil {
		return c, fmt.Errorf("write %s: %w", kalla.UnmatchedLeftFile, err)
	}
	report(kalla.StageWriting, 2.0/3, &c.Matched)
	if c.UnmatchedRight, err = s.copyTo(ctx, s.unmatchedSQL(rule.Right), dir, kalla.UnmatchedRightFile); err != nil {
		return c, fmt.Errorf("write %s: %w", kalla.UnmatchedRightFile, err)
	}
	for side, k := range [2]kalla.KeyMapping{rule.Left, rule.Right} {
		in, err := s.rowsOf(ctx, k.Alias)
		if err != nil {
			return c, err
		}
		if err := s.checkKeysUnique(ctx, k.Alias, k.SourceColumns, matched, k.ResultColumns, in, [2]int64{c.UnmatchedLeft, c.UnmatchedRight}[side], c.Matched); err != nil {
			return c, err
		}
	}
	if _, err := s.conn.ExecContext(ctx, "DROP TABLE "+matched); err != nil {
		return c, fmt.Errorf("drop matched table: %w", err)
	}
	return c, nil
}

// unmatchedSQL selects the source rows whose key is in no match. A NULL key
// never equals anything, so rows with NULL keys are always unmatched.
//
// It is written as an ANTI JOIN, not as the equivalent NOT EXISTS: DuckDB
// decorrelates NOT EXISTS over a filtered scan (a partition read in place)
// into a delim join with an extra hash aggregate and inner join, which made
// a match task's anti-joins 2-3x slower; the explicit ANTI JOIN is planned
// as one hash join in every case, and is also faster on whole sources.
func (s *Session) unmatchedSQL(k kalla.KeyMapping) string {
	return s.antiJoin(k.Alias, s.qualified(matchedTable), k.ResultColumns, k.SourceColumns)
}

// antiJoin selects the rows of the source alias whose key columns srcCols
// equal no row's keyCols in the table keys.
func (s *Session) antiJoin(alias, keys string, keyCols, srcCols []string) string {
	return fmt.Sprintf("SELECT src.* FROM %s AS src ANTI JOIN %s AS m ON %s",
		s.qualified(alias), keys, joinOn("m", keyCols, "src", srcCols))
}

// copyTo writes the rows of query to the Parquet file name in dir and
// returns their count; with dir empty (a dry run) it only counts them.
func (s *Session) copyTo(ctx context.Context, query, dir, name string) (int64, error) {
	return s.copyThen(ctx, query, dir, name, nil)
}

// copyThen is copyTo that, unless then is nil, calls then with the
// written file's path before it is moved into dir ("" in a dry run): the
// session's database may read it there.
func (s *Session) copyThen(ctx context.Context, query, dir, name string, then func(file string) error) (int64, error) {
	if dir == "" {
		n, err := s.count(ctx, "("+query+")")
		if err == nil && then != nil {
			err = then("")
		}
		return n, err
	}
	out, err := s.outDir(dir)
	if err != nil {
		return 0, err
	}
	file := filepath.Join(out, name)
	res, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", query, quoteLiteral(file)))
	if err != nil {
		return 0, cleanError(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if then != nil {
		if err := then(file); err != nil {
			return 0, err
		}
	}
	return n, move(out, dir, name)
}

// rowsOf returns the rows of the source alias, counted once per
// Reconcile: the key check, confirmed pairs, the first rule and every
// explained rule's bound on its pairs need them, and counting a
// carry-over's view runs its joins.
func (s *Session) rowsOf(ctx context.Context, alias string) (int64, error) {
	if n, ok := s.sourceRows[alias]; ok {
		return n, nil
	}
	n, err := s.count(ctx, s.qualified(alias))
	if err != nil {
		return 0, fmt.Errorf("count the rows of %q: %w", alias, err)
	}
	if s.sourceRows != nil {
		s.sourceRows[alias] = n
	}
	return n, nil
}

// exec runs statements in order.
func (s *Session) exec(ctx context.Context, stmts ...string) error {
	for _, st := range stmts {
		if _, err := s.conn.ExecContext(ctx, st); err != nil {
			return cleanError(err)
		}
	}
	return nil
}

// count returns the number of rows of a table expression.
func (s *Session) count(ctx context.Context, from string) (int64, error) {
	var n int64
	err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+from).Scan(&n)
	return n, cleanError(err)
}

// reconcileRules runs a waterfall: rule k sees, as the source aliases, views
// of the rows no earlier rule matched (the sources anti-joined with the
// keys taken so far), found first on the connection's search_path. An
// exclusive rule keeps only its best pairs (assign). The matched rows of
// every rule are stacked by column name into matched.parquet, labelled with
// the rule's name for jobs with rules.
func (s *Session) reconcileRules(ctx context.Context, spec kalla.MatchSpec, dir string, progress func(kalla.Progress)) (kalla.Counts, error) {
	var c kalla.Counts
	report := func(p kalla.Progress) {
		if progress != nil {
			progress(p)
		}
	}
	aliases := [2]string{spec.Rules[0].Left.Alias, spec.Rules[0].Right.Alias}
	srcKeys := [2][]string{spec.Rules[0].Left.SourceColumns, spec.Rules[0].Right.SourceColumns}
	tk, err := s.newTaken(ctx, aliases, srcKeys)
	if err != nil {
		return c, err
	}
	taken := tk.view
	var shapes []*explainShape
	if spec.Explains() {
		var err error
		if shapes, err = s.explainShapes(ctx, spec, aliases); err != nil {
			return c, fmt.Errorf("explain unmatched rows: %w", err)
		}
	}
	// pairs are, for each explaining rule, its pairs that explain reads
	// (nil when the rule ran as written).
	pairs := make([]*rulePairs, len(spec.Rules))
	var parts, suggested []string
	var matchedSoFar int64
	if conf := spec.Confirmed; conf != nil {
		rc, part, err := s.matchConfirmed(ctx, conf, aliases, tk)
		if err != nil {
			return c, fmt.Errorf("confirmed pairs: %w", err)
		}
		parts = append(parts, part)
		matchedSoFar += rc.Matched
		c.Rules = append(c.Rules, rc)
	}
	for k, rule := range spec.Rules {
		start := time.Now()
		report(kalla.Progress{Stage: kalla.StageMatching, Progress: float64(k) / float64(len(spec.Rules)), Rule: rule.Name, MatchedSoFar: &matchedSoFar})
		rc := kalla.RuleCount{Name: rule.Name}
		// Rule 0 reads the sources themselves, unless confirmed pairs
		// took rows first.
		var sh *explainShape
		if shapes != nil {
			sh = shapes[k]
		}
		acc, err := s.runRule(ctx, k, k > 0 || spec.Confirmed != nil, rule, sh, aliases, srcKeys, taken, &rc, &pairs[k])
		if err != nil {
			if spec.Labelled {
				return c, fmt.Errorf("rule %q: %w", rule.Name, err)
			}
			return c, err
		}
		for side, km := range [2]kalla.KeyMapping{rule.Left, rule.Right} {
			if err := s.record(ctx, tk, side, k, acc, km.ResultColumns); err != nil {
				return c, fmt.Errorf("rule %q: record matched keys: %w", rule.Name, err)
			}
		}
		part := "SELECT * FROM " + acc
		if spec.Labelled {
			part = fmt.Sprintf("SELECT %s AS %s, * FROM %s", quoteLiteral(rule.Name), quoteIdent(kalla.RuleColumn), acc)
		}
		rc.ElapsedMS = time.Since(start).Milliseconds()
		if rule.Suggested {
			suggested = append(suggested, part)
			c.Rules = append(c.Rules, rc)
			continue
		}
		parts = append(parts, part)
		matchedSoFar += rc.Matched
		c.Rules = append(c.Rules, rc)
	}
	report(kalla.Progress{Stage: kalla.StageMatching, Progress: 1, MatchedSoFar: &matchedSoFar})

	matched := strings.Join(parts, " UNION ALL BY NAME ")
	if len(parts) == 0 {
		// Every rule only suggests: no row is matched.
		matched = "SELECT * FROM (" + strings.Join(suggested, " UNION ALL BY NAME ") + ") LIMIT 0"
	}
	if c.Matched, err = s.copyTo(ctx, matched, dir, kalla.MatchedFile); err != nil {
		return c, fmt.Errorf("write %s: %w", kalla.MatchedFile, err)
	}
	if len(suggested) > 0 {
		if c.Suggested, err = s.copyTo(ctx, strings.Join(suggested, " UNION ALL BY NAME "), dir, kalla.SuggestedFile); err != nil {
			return c, fmt.Errorf("write %s: %w", kalla.SuggestedFile, err)
		}
	}
	report(kalla.Progress{Stage: kalla.StageWriting, Progress: 1.0 / 3, MatchedSoFar: &c.Matched})
	names := [2]string{kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile}
	counts := [2]*int64{&c.UnmatchedLeft, &c.UnmatchedRight}
	// A suggested rule's rows are unseen by later rules but stay unmatched.
	var matchedKeys [2]string
	for side := range 2 {
		matchedKeys[side] = taken[side]
		if ks := suggestingRules(spec); ks != "" {
			matchedKeys[side] = fmt.Sprintf("(SELECT * FROM %s WHERE _kalla_by NOT IN (%s))", taken[side], ks)
		}
	}
	var unmatched [2]string
	for side, alias := range aliases {
		unmatched[side] = s.antiJoin(alias, matchedKeys[side], srcKeys[side], srcKeys[side])
	}
	if !spec.Explains() && spec.Suggests() {
		unmatched = s.markSuggested(spec, srcKeys, taken, unmatched)
	}
	var reasons [2]map[string]int64
	var then [2]func(file string) error
	if spec.Explains() {
		report(kalla.Progress{Stage: kalla.StageWriting, Progress: 1.0 / 3, MatchedSoFar: &c.Matched})
		if unmatched, err = s.explain(ctx, spec, shapes, pairs, aliases, srcKeys, taken, matchedKeys, unmatched); err != nil {
			return c, fmt.Errorf("explain unmatched rows: %w", err)
		}
		// The counts by reason are read from the written files, or
		// from the explained rows themselves in a dry run.
		for side := range 2 {
			then[side] = func(file string) (err error) {
				from := "(" + unmatched[side] + ")"
				if file != "" {
					from = "read_parquet(" + quoteLiteral(file) + ")"
				}
				reasons[side], err = s.explainCounts(ctx, from)
				return err
			}
		}
	}
	for side := range aliases {
		if *counts[side], err = s.copyThen(ctx, unmatched[side], dir, names[side], then[side]); err != nil {
			return c, fmt.Errorf("write %s: %w", names[side], err)
		}
		report(kalla.Progress{Stage: kalla.StageWriting, Progress: float64(side+2) / 3, MatchedSoFar: &c.Matched})
	}
	if spec.Explains() {
		c.Reasons = &kalla.ReasonCounts{Left: reasons[0], Right: reasons[1]}
	}
	// Every rule's counts start with the whole sources (confirmed
	// pairs, when there are some, are counted first).
	// The matched keys of a side are one row per matched pair: the
	// pairs counted as matchedSoFar, without counting the keys again.
	in := [2]int64{c.Rules[0].LeftIn, c.Rules[0].RightIn}
	for side, alias := range aliases {
		if err := s.checkKeysUnique(ctx, alias, srcKeys[side], matchedKeys[side], srcKeys[side], in[side], *counts[side], matchedSoFar); err != nil {
			return c, err
		}
	}
	return c, nil
}

// confirmedBy is the _kalla_by of the keys the confirmed pairs took.
const confirmedBy = -1

// matchConfirmed keeps the confirmed pairs whose two rows are in the
// sources, records their keys as taken, and returns their count and the
// query stacking them into matched.parquet.
func (s *Session) matchConfirmed(ctx context.Context, conf *kalla.ConfirmedSpec, aliases [2]string, taken *takenKeys) (kalla.RuleCount, string, error) {
	start := time.Now()
	rc := kalla.RuleCount{Name: kalla.ConfirmedRule}
	var err error
	if rc.LeftIn, err = s.rowsOf(ctx, aliases[0]); err != nil {
		return rc, "", err
	}
	if rc.RightIn, err = s.rowsOf(ctx, aliases[1]); err != nil {
		return rc, "", err
	}
	from := s.qualified(kalla.ConfirmedAlias)
	if rc.Candidates, err = s.count(ctx, from); err != nil {
		return rc, "", err
	}
	q := fmt.Sprintf("SELECT %s FROM %s AS c", strings.Join(prefixAll("c.", quoteAll(conf.Columns)), ", "), from)
	for side, km := range [2]kalla.KeyMapping{conf.Left, conf.Right} {
		src := fmt.Sprintf("s%d", side)
		q += fmt.Sprintf(" SEMI JOIN %s AS %s ON %s", s.qualified(aliases[side]), src, joinOn(src, km.SourceColumns, "c", km.ResultColumns))
	}
	acc := s.qualified("_kalla_accepted_confirmed")
	if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", acc, q)); err != nil {
		return rc, "", err
	}
	for side, km := range [2]kalla.KeyMapping{conf.Left, conf.Right} {
		if err := s.record(ctx, taken, side, confirmedBy, acc, km.ResultColumns); err != nil {
			return rc, "", fmt.Errorf("record confirmed keys: %w", err)
		}
	}
	if rc.Matched, err = s.count(ctx, acc); err != nil {
		return rc, "", err
	}
	rc.ElapsedMS = time.Since(start).Milliseconds()
	return rc, fmt.Sprintf("SELECT %s AS %s, * FROM %s", quoteLiteral(kalla.ConfirmedRule), quoteIdent(kalla.RuleColumn), acc), nil
}

// joinOn is the condition that rows a and b agree on their columns: a's
// acols[i] equals b's bcols[i] for every i (names are quoted here).
func joinOn(a string, acols []string, b string, bcols []string) string {
	conds := make([]string, len(acols))
	for i := range acols {
		conds[i] = fmt.Sprintf("%s.%s = %s.%s", a, quoteIdent(acols[i]), b, quoteIdent(bcols[i]))
	}
	return strings.Join(conds, " AND ")
}

// orderTerm is expr as an ORDER BY term of a ranking: ascending unless
// desc, NULLs last either way.
func orderTerm(expr string, desc bool) string {
	if desc {
		return expr + " DESC NULLS LAST"
	}
	return expr + " ASC NULLS LAST"
}

// prefixAll prefixes each of names with p.
func prefixAll(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// suggestingRules lists the indexes of spec's suggested rules, for SQL;
// "" when there is none.
func suggestingRules(spec kalla.MatchSpec) string {
	var ks []string
	for k, r := range spec.Rules {
		if r.Suggested {
			ks = append(ks, strconv.Itoa(k))
		}
	}
	return strings.Join(ks, ", ")
}

// markSuggested adds _kalla_reason to the unmatched rows of a job that
// suggests pairs without explaining: "suggested" for a suggested row, NULL
// (not explained) for the others.
func (s *Session) markSuggested(spec kalla.MatchSpec, srcKeys [2][]string, taken, unmatched [2]string) [2]string {
	var out [2]string
	for side := range 2 {
		out[side] = fmt.Sprintf(`SELECT u.*, CASE WHEN t._kalla_by IS NOT NULL THEN %s END AS %s FROM (%s) AS u
LEFT JOIN (SELECT DISTINCT ON (%s) * FROM %s WHERE _kalla_by IN (%s)) AS t ON %s`,
			quoteLiteral(kalla.ReasonSuggested), quoteIdent(kalla.ReasonColumn), unmatched[side],
			strings.Join(quoteAll(srcKeys[side]), ", "), taken[side], suggestingRules(spec), joinOn("t", srcKeys[side], "u", srcKeys[side]))
	}
	return out
}

// runRule runs rule k over the rows not taken yet (all of them when
// remainder is false) and returns the table holding the pairs it keeps,
// filling in rc. An explained rule of shape sh keeps its pairs for
// explain when it can (runPairs), and sets *pairs to their table.
func (s *Session) runRule(ctx context.Context, k int, remainder bool, rule kalla.RuleSpec, sh *explainShape, aliases [2]string, srcKeys [2][]string, taken [2]string, rc *kalla.RuleCount, pairs **rulePairs) (string, error) {
	remaining := [2]string{s.qualified(aliases[0]), s.qualified(aliases[1])}
	if remainder {
		schema := fmt.Sprintf("%s_rule%d", s.schema, k)
		if err := s.exec(ctx, "CREATE SCHEMA "+quoteIdent(schema)); err != nil {
			return "", fmt.Errorf("create schema of rule: %w", err)
		}
		for side, alias := range aliases {
			view := quoteIdent(schema) + "." + quoteIdent(alias)
			q := s.antiJoin(alias, taken[side], srcKeys[side], srcKeys[side])
			if err := s.exec(ctx, fmt.Sprintf("CREATE VIEW %s AS %s", view, q)); err != nil {
				return "", fmt.Errorf("create remaining rows of %q: %w", alias, err)
			}
			remaining[side] = view
		}
	}
	var err error
	for side, n := range [2]*int64{&rc.LeftIn, &rc.RightIn} {
		if !remainder {
			*n, err = s.rowsOf(ctx, aliases[side])
		} else if *n, err = s.count(ctx, remaining[side]); err != nil {
			err = fmt.Errorf("count remaining rows of %q: %w", aliases[side], err)
		}
		if err != nil {
			return "", err
		}
	}
	candName := fmt.Sprintf("_kalla_candidates_%d", k)
	cand := s.qualified(candName)
	kind := "TABLE"
	if sh != nil {
		made, p, err := s.runPairs(ctx, k, remainder, rule, sh, srcKeys, taken, candName)
		if err != nil {
			return "", err
		}
		if p != nil {
			kind, *pairs = made, p
		}
	}
	create := fmt.Sprintf("CREATE TABLE %s AS %s", cand, rule.SQL)
	switch {
	case *pairs != nil:
		// runPairs made the candidates.
	case remainder:
		// The rule's unqualified source names resolve to the views first.
		path := fmt.Sprintf("%s_rule%d,%s,main", s.schema, k, s.schema)
		if err := s.withSearchPath(ctx, path, create); err != nil {
			return "", fmt.Errorf("run match_sql: %w", err)
		}
	default:
		if err := s.exec(ctx, create); err != nil {
			return "", fmt.Errorf("run match_sql: %w", err)
		}
	}
	if rc.Candidates, err = s.count(ctx, cand); err != nil {
		return "", err
	}
	if rule.Exclusive == nil {
		rc.Matched = rc.Candidates
		return cand, nil
	}
	accName := fmt.Sprintf("_kalla_accepted_%d", k)
	acc := s.qualified(accName)
	if rc.Ties, err = s.assign(ctx, candName, rule, accName); err != nil {
		return "", fmt.Errorf("keep the best pairs: %w", err)
	}
	if rc.Matched, err = s.count(ctx, acc); err != nil {
		return "", err
	}
	if err := s.exec(ctx, fmt.Sprintf("DROP %s %s", kind, cand)); err != nil {
		return "", err
	}
	return acc, nil
}

// withSearchPath runs stmt with the connection's search_path set to path,
// and restores the session's own after.
func (s *Session) withSearchPath(ctx context.Context, path, stmt string) error {
	if err := s.exec(ctx, "SET search_path = "+quoteLiteral(path)); err != nil {
		return err
	}
	err := s.exec(ctx, stmt)
	if rerr := s.exec(context.WithoutCancel(ctx), "SET search_path = "+quoteLiteral(s.schema+",main")); err == nil && rerr != nil {
		err = fmt.Errorf("restore search_path: %w", rerr)
	}
	return err
}

// quoteAll quotes each name as an identifier.
func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quoteIdent(n)
	}
	return out
}
