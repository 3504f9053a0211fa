package duckdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/kalla-dev/kalla"
)

// defaultCSVSampleRows is how many rows, from the start of a CSV source,
// type its numeric-looking columns when it is attached. Scanning every
// value as text to type them, then reading the file again typed, took twice
// what DuckDB needs to read it once (7.2 s against 3.4 s at 5M invoices);
// the sample costs a few milliseconds, and the rows after it are checked as
// they are staged (see fitsSQL).
const defaultCSVSampleRows = 100_000

// csvTyping is how a CSV source's numeric-looking columns were typed.
type csvTyping struct {
	// base is the read_csv call without its types and closing parenthesis.
	base string
	// numeric are the columns DuckDB's sniffer called numeric, which Kalla
	// types from their values.
	numeric []int
	// guesses are those of numeric typed from the sample only: staging
	// checks every value against them, and retypes from every value if
	// one does not fit.
	guesses []csvGuess
}

// csvGuess is a column typed from the sample: every value of the whole
// source decides the same type if each one passes fitsSQL.
type csvGuess struct {
	col     int
	sniffed kalla.Type // the sniffer's type, which decideNumeric takes
	sample  numericStats
}

// numericStats are what decides the type of a numeric-looking column (see
// decideNumeric): how many values are not plain integers, how many are not
// plain decimals, and the most digits seen before and after the point.
type numericStats struct {
	notInt, notDec   int64
	intDigits, scale int
}

// numericStatsSQL returns the aggregates of numericStats for column c,
// read as text.
func numericStatsSQL(c string) []string {
	return []string{
		fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND NOT regexp_full_match(%s, '-?(0|[1-9][0-9]*)'))", c, c),
		fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND NOT regexp_full_match(%s, '-?(0|[1-9][0-9]*)(\\.[0-9]+)?'))", c, c),
		fmt.Sprintf("coalesce(max(length(ltrim(split_part(%s, '.', 1), '-'))), 0)", c),
		fmt.Sprintf("coalesce(max(length(split_part(%s, '.', 2))), 0)", c),
	}
}

// textTypes returns the types option of read_csv that reads cols as they
// are typed, except the columns text, which it reads as VARCHAR.
func textTypes(cols []kalla.Column, types []string, text []int) string {
	asText := make(map[int]bool, len(text))
	for _, i := range text {
		asText[i] = true
	}
	defs := make([]string, len(cols))
	for i, c := range cols {
		typ := types[i]
		if asText[i] {
			typ = "VARCHAR"
		}
		defs[i] = quoteLiteral(c.Name) + ": " + quoteLiteral(typ)
	}
	return "types = {" + strings.Join(defs, ", ") + "}"
}

// numericStats scans the columns idx of the CSV source read by base (all
// of it, or its first limit rows when limit > 0) as text, and returns their
// statistics and the number of rows read.
func (s *Session) numericStats(ctx context.Context, base string, cols []kalla.Column, types []string, idx []int, limit int64) ([]numericStats, int64, error) {
	var aggs []string
	for _, i := range idx {
		aggs = append(aggs, numericStatsSQL(quoteIdent(cols[i].Name))...)
	}
	from := base + ", " + textTypes(cols, types, idx) + ")"
	if limit > 0 {
		from = fmt.Sprintf("(SELECT * FROM %s LIMIT %d)", from, limit)
	}
	q := fmt.Sprintf("SELECT count(*), %s FROM %s", strings.Join(aggs, ", "), from)
	vals := make([]int64, 1+len(aggs))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := s.conn.QueryRowContext(ctx, q).Scan(ptrs...); err != nil {
		return nil, 0, cleanError(err)
	}
	stats := make([]numericStats, len(idx))
	for k := range idx {
		v := vals[1+4*k:]
		stats[k] = numericStats{notInt: v[0], notDec: v[1], intDigits: int(v[2]), scale: int(v[3])}
	}
	return stats, vals[0], nil
}

// decideNumeric types a numeric-looking column from the statistics of its
// values: integers without leading zeros become BIGINT, plain decimals
// DECIMAL with the largest scale seen, anything else stays VARCHAR,
// unchanged. DuckDB's sniffer alone would read 12.34 as DOUBLE, which
// loses true matches at a tolerance boundary, and 007 as the integer 7.
func decideNumeric(st numericStats, sniffed kalla.Type) kalla.Type {
	switch {
	case st.notInt == 0 && st.intDigits <= 18:
		return kalla.Type{Kind: kalla.TypeBigint}
	case st.notDec == 0 && st.intDigits+st.scale <= kalla.MaxDecimalPrecision:
		p := 18
		if st.intDigits+st.scale > 18 {
			p = kalla.MaxDecimalPrecision
		}
		return kalla.Type{Kind: kalla.TypeDecimal, Precision: p, Scale: st.scale}
	case sniffed.Kind == kalla.TypeDouble && st.notDec > 0 && st.notInt > 0 && st.intDigits+st.scale > kalla.MaxDecimalPrecision:
		// Too wide for DECIMAL: keep the sniffer's DOUBLE.
		return sniffed
	default:
		return kalla.Type{Kind: kalla.TypeVarchar}
	}
}

// typeNumeric types the numeric columns of the CSV source ct from a sample
// of its rows, and records in ct the columns whose type the rows after the
// sample could still change.
func (s *Session) typeNumeric(ctx context.Context, ct *csvTyping, cols []kalla.Column, types []string) error {
	sample := s.engine.csvSampleRows
	stats, rows, err := s.numericStats(ctx, ct.base, cols, types, ct.numeric, sample)
	if err != nil {
		return err
	}
	whole := rows < sample // the sample is every row
	for k, i := range ct.numeric {
		sniffed := cols[i].Type
		typ := decideNumeric(stats[k], sniffed)
		guess := !whole
		if typ.Kind == kalla.TypeDouble || (typ.Kind == kalla.TypeVarchar && cols[i].Type.Kind != kalla.TypeDouble) {
			// More values cannot change these: text stays text, and a
			// DOUBLE stays one.
			guess = false
		}
		cols[i].Type, types[i] = typ, typ.SQL()
		if guess {
			ct.guesses = append(ct.guesses, csvGuess{col: i, sniffed: sniffed, sample: stats[k]})
		}
	}
	return nil
}

// settleFiltered types from every value the sampled columns that a filter
// compares with a value their sampled type cannot hold (code = "A-1" on a
// column whose sample held only integers): typed from every value, the
// column may hold it, and the filter is then checked against that type, as
// it always was.
func (s *Session) settleFiltered(ctx context.Context, t *table) error {
	if t.csv == nil || len(t.csv.guesses) == 0 {
		return nil
	}
	var wrong, right []csvGuess
	for _, g := range t.csv.guesses {
		fits := true
		for _, f := range t.filters {
			if !strings.EqualFold(f.Column, t.cols[g.col].Name) || f.Op == kalla.OpLike {
				continue
			}
			ops, err := f.Operands()
			if err != nil {
				continue // filterSQL reports it
			}
			for _, op := range ops {
				var ok bool
				q := fmt.Sprintf("SELECT TRY_CAST(%s AS %s) IS NOT NULL", quoteLiteral(op.Text), t.types[g.col])
				if err := s.conn.QueryRowContext(ctx, q).Scan(&ok); err != nil {
					return fmt.Errorf("check filter value: %w", cleanError(err))
				}
				fits = fits && ok
			}
		}
		if fits {
			right = append(right, g)
		} else {
			wrong = append(wrong, g)
		}
	}
	if len(wrong) == 0 {
		return nil
	}
	t.csv.guesses = wrong
	if err := s.typeFromAll(ctx, t); err != nil {
		return err
	}
	t.csv.guesses = right
	return nil
}

// fitsSQL returns a condition, on column c read as text, that holds when
// its value leaves the type decided from the sample as it is: so that when
// every value passes, decideNumeric on all of them gives that type too. It
// accepts only values decideNumeric's patterns accept, in the form DuckDB
// would print them back (a decimal may drop trailing zeros of its
// fraction): "007", "+5", " 5", "1." or a longer fraction than the sample's
// fail it.
func fitsSQL(c string, typ kalla.Type, sample numericStats) string {
	var ok string
	switch typ.Kind {
	case kalla.TypeBigint:
		v := "TRY_CAST(" + c + " AS BIGINT)"
		ok = fmt.Sprintf("CAST(%s AS VARCHAR) = %s AND %s BETWEEN -999999999999999999 AND 999999999999999999", v, c, v)
	case kalla.TypeDecimal:
		// A CASE, not an OR: in a projection DuckDB evaluates both sides
		// of an OR on every row (1.8 s of CPU at 5M rows), a CASE's ELSE
		// only on the rows its WHEN leaves.
		r := "CAST(TRY_CAST(" + c + " AS " + typ.SQL() + ") AS VARCHAR)"
		ok = fmt.Sprintf("CASE WHEN %s = %s THEN true ELSE starts_with(%s, %s) AND NOT ends_with(%s, '.') AND rtrim(substr(%s, length(%s) + 1), '0') IN ('', '.') END",
			r, c, r, c, c, r, c)
	default:
		// A VARCHAR the sniffer called DOUBLE turns DOUBLE with enough
		// digits: no more than the sample's keeps it text.
		ok = fmt.Sprintf("length(ltrim(split_part(%s, '.', 1), '-')) <= %d AND length(split_part(%s, '.', 2)) <= %d",
			c, sample.intDigits, c, sample.scale)
	}
	return fmt.Sprintf("(%s IS NULL OR coalesce(%s, false))", c, ok)
}

// csvMisfit is the error staging raises when a value after the sample does
// not fit the type the sample decided.
const csvMisfit = "kalla: a CSV value after the sample does not fit its column's type"

// loadCSV stages the CSV source t, checking the columns typed from the
// sample as it reads them: one pass over the files. If a value does not
// fit, those columns are typed from every value and the rows read again.
func (s *Session) loadCSV(ctx context.Context, t *table) (int64, error) {
	if t.csv == nil || len(t.csv.guesses) == 0 {
		return s.insertFrom(ctx, t, t.from+t.where)
	}
	res, err := s.conn.ExecContext(ctx, "INSERT INTO "+s.qualified(t.alias)+" "+s.checkedSelect(t))
	if err == nil {
		t.csv.guesses = nil
		return res.RowsAffected()
	}
	if !strings.Contains(err.Error(), csvMisfit) {
		return 0, cleanError(err)
	}
	s.engine.logger.Info("a CSV value after the sample does not fit the sampled type: typing from every value", "alias", t.alias)
	if err := s.retypeCSV(ctx, t); err != nil {
		return 0, err
	}
	return s.insertFrom(ctx, t, t.from+t.where)
}

// insertFrom stages the rows of from (a table expression and its WHERE).
func (s *Session) insertFrom(ctx context.Context, t *table, from string) (int64, error) {
	res, err := s.conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT * FROM %s", s.qualified(t.alias), from))
	if err != nil {
		return 0, cleanError(err)
	}
	return res.RowsAffected()
}

// checkedSelect reads t's rows with its guessed columns as text, cast to
// their guessed types, and fails with csvMisfit on the first value that
// does not fit. The check and the filters are one CASE, so that every row
// is checked, whichever rows the filters keep: no filter is evaluated
// before it.
func (s *Session) checkedSelect(t *table) string {
	guessed := make(map[int]csvGuess, len(t.csv.guesses))
	idx := make([]int, len(t.csv.guesses))
	for k, g := range t.csv.guesses {
		guessed[g.col], idx[k] = g, g.col
	}
	sel := make([]string, len(t.cols))
	var fits []string
	for i, c := range t.cols {
		name := quoteIdent(c.Name)
		sel[i] = name
		if g, ok := guessed[i]; ok {
			fits = append(fits, fitsSQL(name, c.Type, g.sample))
			if c.Type.Kind != kalla.TypeVarchar {
				sel[i] = fmt.Sprintf("TRY_CAST(%s AS %s) AS %s", name, t.types[i], name)
			}
		}
	}
	keep := "true"
	if cond, ok := strings.CutPrefix(t.where, " WHERE "); ok {
		keep = cond
	}
	fit := freeName(t.cols, "kalla_fits")
	inner := fmt.Sprintf("SELECT %s, %s AS %s FROM %s, %s)", strings.Join(sel, ", "), strings.Join(fits, " AND "), fit,
		t.csv.base, textTypes(t.cols, t.types, idx))
	return fmt.Sprintf("SELECT * EXCLUDE (%s) FROM (%s) WHERE CASE WHEN %s THEN %s ELSE error(%s) END",
		fit, inner, fit, keep, quoteLiteral(csvMisfit))
}

// freeName returns name, or name with a number, whichever no column of
// cols is called.
func freeName(cols []kalla.Column, name string) string {
	for n, free := 1, name; ; n++ {
		taken := false
		for _, c := range cols {
			taken = taken || strings.EqualFold(c.Name, free)
		}
		if !taken {
			return quoteIdent(free)
		}
		free = fmt.Sprintf("%s_%d", name, n)
	}
}

// settleCSV makes the types of t final before its rows are read elsewhere
// (in cuts, by other tasks): it checks every value of the guessed columns
// and types from every value those with one that does not fit.
func (s *Session) settleCSV(ctx context.Context, t *table) error {
	if t.csv == nil || len(t.csv.guesses) == 0 {
		return nil
	}
	var counts []string
	idx := make([]int, len(t.csv.guesses))
	for k, g := range t.csv.guesses {
		c := quoteIdent(t.cols[g.col].Name)
		counts = append(counts, fmt.Sprintf("count(*) FILTER (WHERE NOT %s)", fitsSQL(c, t.cols[g.col].Type, g.sample)))
		idx[k] = g.col
	}
	q := fmt.Sprintf("SELECT %s FROM %s, %s)", strings.Join(counts, ", "), t.csv.base, textTypes(t.cols, t.types, idx))
	misfits := make([]int64, len(counts))
	ptrs := make([]any, len(counts))
	for i := range misfits {
		ptrs[i] = &misfits[i]
	}
	if err := s.conn.QueryRowContext(ctx, q).Scan(ptrs...); err != nil {
		return fmt.Errorf("check csv types: %w", cleanError(err))
	}
	var wrong []csvGuess
	for k, g := range t.csv.guesses {
		if misfits[k] > 0 {
			wrong = append(wrong, g)
		}
	}
	t.csv.guesses = wrong
	if len(wrong) == 0 {
		return nil
	}
	return s.retypeCSV(ctx, t)
}

// typeFromAll types t's guessed columns from every value.
func (s *Session) typeFromAll(ctx context.Context, t *table) error {
	idx := make([]int, len(t.csv.guesses))
	for k, g := range t.csv.guesses {
		idx[k] = g.col
	}
	stats, _, err := s.numericStats(ctx, t.csv.base, t.cols, t.types, idx, 0)
	if err != nil {
		return fmt.Errorf("type csv columns: %w", err)
	}
	for k, i := range idx {
		typ := decideNumeric(stats[k], t.csv.guesses[k].sniffed)
		t.cols[i].Type, t.types[i] = typ, typ.SQL()
	}
	t.csv.guesses = nil
	t.from = t.csv.base + ", " + textTypes(t.cols, t.types, nil) + ")"
	return nil
}

// retypeCSV types t's guessed columns from every value, and declares its
// table again with the new types (and its filters with them).
func (s *Session) retypeCSV(ctx context.Context, t *table) error {
	if err := s.typeFromAll(ctx, t); err != nil {
		return err
	}
	if _, err := s.conn.ExecContext(ctx, "DROP TABLE "+s.qualified(t.alias)); err != nil {
		return fmt.Errorf("retype %q: %w", t.alias, cleanError(err))
	}
	return s.declare(ctx, t)
}

// typeFromCarried types the columns of today's CSV source t that have no
// value to be typed from (every column, on a day whose file has a header
// and no rows) as the carried rows prev hold them, and declares t again
// with those types. DuckDB reads such a column as VARCHAR, and the carried
// rows, which take today's types, would then compare DECIMAL amounts and
// DATEs as text. Only columns the carried file holds in a type a CSV value
// is read as change; a column with a value keeps the type its values give.
func (s *Session) typeFromCarried(ctx context.Context, t *table, prev *table) error {
	if t.csv == nil {
		return nil
	}
	carried := make(map[string]string, len(prev.cols))
	for i, c := range prev.cols {
		switch c.Type.Kind {
		case kalla.TypeVarchar, kalla.TypeBlob, kalla.TypeJSON:
			// VARCHAR is what the column is already; DuckDB reads any
			// type it does not name as VARCHAR, and BLOB or JSON from a
			// CSV would not be the text it holds.
		default:
			carried[strings.ToLower(c.Name)] = prev.types[i]
		}
	}
	guessed := make(map[int]bool, len(t.csv.guesses))
	for _, g := range t.csv.guesses {
		guessed[g.col] = true
	}
	all := make([]int, len(t.cols))
	for i := range all {
		all[i] = i
	}
	// Every column read as text: only whether a value is there counts.
	from := t.csv.base + ", " + textTypes(t.cols, t.types, all) + ")"
	changed := false
	for i, c := range t.cols {
		typ, ok := carried[strings.ToLower(c.Name)]
		if !ok || t.types[i] != "VARCHAR" || guessed[i] {
			continue
		}
		// One query a column, each ending at its first value: a column
		// with values usually has one in its first rows.
		var has bool
		q := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s IS NOT NULL)", from, quoteIdent(c.Name))
		if err := s.conn.QueryRowContext(ctx, q).Scan(&has); err != nil {
			return fmt.Errorf("look for a value of csv column %q: %w", c.Name, cleanError(err))
		}
		if !has {
			t.cols[i].Type, t.types[i] = parseType(typ), typ
			changed = true
		}
	}
	if !changed {
		return nil
	}
	t.from = t.csv.base + ", " + textTypes(t.cols, t.types, nil) + ")"
	if _, err := s.conn.ExecContext(ctx, "DROP TABLE "+s.qualified(t.alias)); err != nil {
		return fmt.Errorf("retype %q: %w", t.alias, cleanError(err))
	}
	return s.declare(ctx, t)
}
