package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

var _ kalla.Carrier = (*Session)(nil)

// carrySide is one side of a carry-over job: the relations Carry made.
type carrySide struct {
	spec kalla.CarrySpec
	// today is today's rows (the attached table or view, renamed);
	// carried is a table of the previous run's rows in today's types, ""
	// when the job starts a chain (no carry_over.from); lineage is a view
	// of every row with its lineage columns, before expiry; expired its
	// rows past max_age_days.
	today, carried, lineage, expired string
}

// The lineage columns a carried file must hold; _kalla_age_days is
// computed again each run, and other _kalla_ columns are not carried.
var carriedLineage = []struct{ name, typ string }{
	{kalla.FirstSeenRunColumn, "VARCHAR"},
	{kalla.FirstSeenAtColumn, "DATE"},
	{kalla.RunsOpenColumn, "INTEGER"},
}

// Carry implements kalla.Carrier. The attached alias is renamed (Load
// fills it under its new name) and replaced by a view of today's rows and
// the carried ones with lineage, so every later use of the alias (match
// rules, unmatched anti-joins) sees one set. A carried row whose key is in
// today's source gives way to today's row, which keeps its first_seen. The
// carried rows are copied into a table: they are a previous run's open
// items, few next to a source, and are read several times.
func (s *Session) Carry(ctx context.Context, alias string, carried kalla.Source, spec kalla.CarrySpec) error {
	t, ok := s.tables[alias]
	if !ok {
		return fmt.Errorf("source %q is not attached", alias)
	}
	cs := &carrySide{spec: spec}
	todayName := "_kalla_today_" + alias
	kind := "TABLE"
	if t.view {
		kind = "VIEW"
	}
	if err := s.exec(ctx, fmt.Sprintf("ALTER %s %s RENAME TO %s", kind, s.qualified(alias), quoteIdent(todayName))); err != nil {
		return fmt.Errorf("rename today's rows: %w", err)
	}
	t.alias = todayName
	cs.today = s.qualified(todayName)

	if carried != nil {
		cs.carried = s.qualified("_kalla_carried_" + alias)
		if err := s.loadCarried(ctx, alias, t, carried, cs); err != nil {
			return err
		}
	}
	cs.lineage = s.qualified("_kalla_lineage_" + alias)
	if err := s.exec(ctx, fmt.Sprintf("CREATE VIEW %s AS %s", cs.lineage, lineageSQL(t.cols, cs))); err != nil {
		return fmt.Errorf("add lineage columns: %w", err)
	}
	expired := "false"
	if spec.MaxAgeDays != nil {
		expired = fmt.Sprintf("(%s > 1 AND %s > %d)", quoteIdent(kalla.RunsOpenColumn), quoteIdent(kalla.AgeDaysColumn), *spec.MaxAgeDays)
	}
	cs.expired = s.qualified("_kalla_expired_" + alias)
	if err := s.exec(ctx,
		fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s WHERE %s", cs.expired, cs.lineage, expired),
		fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s WHERE NOT %s", s.qualified(alias), cs.lineage, expired),
	); err != nil {
		return fmt.Errorf("set expired rows aside: %w", err)
	}
	if s.carry == nil {
		s.carry = map[string]*carrySide{}
	}
	s.carry[alias] = cs
	return nil
}

// loadCarried reads the previous run's file of the side into cs.carried,
// each column in today's type. A column missing on either side, or whose
// values today's type cannot hold exactly, is a *kalla.ValidationError.
func (s *Session) loadCarried(ctx context.Context, alias string, t *table, src kalla.Source, cs *carrySide) error {
	dir := filepath.Join(s.dir, "carry-"+alias)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create carry dir: %w", err)
	}
	rd, err := src.Read(ctx, kalla.Whole, dir)
	if err != nil {
		return err
	}
	if rd.Files == nil || rd.Files.Format != kalla.FormatParquet {
		return fmt.Errorf("carried %s is not read as Parquet files", cs.spec.File)
	}
	prev := &table{alias: "_kalla_prev_" + alias}
	if err := s.describeFiles(ctx, prev, rd.Files); err != nil {
		return kalla.Invalid("", "%s: %v", cs.spec.File, err)
	}
	types := map[string]string{}
	names := map[string]string{}
	for i, c := range prev.cols {
		types[strings.ToLower(c.Name)] = prev.types[i]
		names[strings.ToLower(c.Name)] = c.Name
	}
	want := make([]struct{ name, typ string }, 0, len(t.cols)+len(carriedLineage))
	for i, c := range t.cols {
		want = append(want, struct{ name, typ string }{c.Name, t.types[i]})
	}
	want = append(want, carriedLineage...)
	known := map[string]bool{}
	var selects []string
	for _, w := range want {
		key := strings.ToLower(w.name)
		known[key] = true
		typ, ok := types[key]
		if !ok {
			if strings.HasPrefix(key, kalla.ReservedPrefix) {
				return kalla.Invalid("", "the carried %s has no column %q: it was not written by a carry-over run (start the chain with a carry_over that has no from)", cs.spec.File, w.name)
			}
			return kalla.Invalid("", "the carried %s has no column %q, which the %s source %q has (%s): carried and today's columns are matched by name",
				cs.spec.File, w.name, cs.spec.Side, alias, w.typ)
		}
		col := quoteIdent(names[key])
		if typ == w.typ {
			selects = append(selects, col+" AS "+quoteIdent(w.name))
			continue
		}
		if err := s.checkExactCast(ctx, prev.from, names[key], typ, w.typ, cs, alias); err != nil {
			return err
		}
		selects = append(selects, fmt.Sprintf("CAST(%s AS %s) AS %s", col, w.typ, quoteIdent(w.name)))
	}
	for i, c := range prev.cols {
		key := strings.ToLower(c.Name)
		if !known[key] && !strings.HasPrefix(key, kalla.ReservedPrefix) {
			return kalla.Invalid("", "the carried %s has a column %q (%s) that the %s source %q does not have (columns: %s): carried and today's columns are matched by name",
				cs.spec.File, c.Name, prev.types[i], cs.spec.Side, alias, kalla.ColumnNames(t.cols))
		}
	}
	create := fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM %s", cs.carried, strings.Join(selects, ", "), prev.from)
	if err := s.exec(ctx, create); err != nil {
		return fmt.Errorf("read carried %s: %w", cs.spec.File, err)
	}
	return nil
}

// checkExactCast refuses a carried column of type from whose values do not
// survive a cast to today's type to and back unchanged (12.345 into
// DECIMAL(18,2), '007' into BIGINT), naming one such value.
func (s *Session) checkExactCast(ctx context.Context, rel, name, from, to string, cs *carrySide, alias string) error {
	c := quoteIdent(name)
	q := fmt.Sprintf("SELECT CAST(%s AS VARCHAR) FROM %s WHERE %s IS NOT NULL AND (TRY_CAST(%s AS %s) IS NULL OR CAST(TRY_CAST(%s AS %s) AS %s) IS DISTINCT FROM %s) LIMIT 1",
		c, rel, c, c, to, c, to, from, c)
	var bad sql.NullString
	err := s.conn.QueryRowContext(ctx, q).Scan(&bad)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return kalla.Invalid("", "column %q of the %s side is %s in the carried %s but %s in source %q, and the types do not convert: %v",
			name, cs.spec.Side, from, cs.spec.File, to, alias, cleanError(err))
	}
	return kalla.Invalid("", "column %q of the %s side is %s in the carried %s but %s in source %q, and the carried value %q does not convert exactly",
		name, cs.spec.Side, from, cs.spec.File, to, alias, bad.String)
}

// lineageSQL selects every row of the side with its lineage columns:
// today's rows (first seen today unless their key was carried) and the
// carried rows whose key is not in today's source. A NULL key equals
// nothing, as in matching, so such rows never replace each other.
func lineageSQL(cols []kalla.Column, cs *carrySide) string {
	spec := cs.spec
	asOf := "DATE " + quoteLiteral(spec.AsOf)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.Name)
	}
	fsr, fsa, ro := quoteIdent(kalla.FirstSeenRunColumn), quoteIdent(kalla.FirstSeenAtColumn), quoteIdent(kalla.RunsOpenColumn)
	var rows string
	if cs.carried == "" {
		rows = fmt.Sprintf("SELECT %s, %s AS %s, %s AS %s, CAST(1 AS INTEGER) AS %s FROM %s",
			strings.Join(names, ", "), quoteLiteral(spec.RunID), fsr, asOf, fsa, ro, cs.today)
	} else {
		keys := quoteAll(spec.Keys)
		on := make([]string, len(keys))
		for i, k := range keys {
			on[i] = fmt.Sprintf("t.%s = c.%s", k, k)
		}
		// One lineage per carried key, the oldest, so that a key carried
		// twice never doubles today's row.
		prev := fmt.Sprintf("SELECT %s, arg_min(%s, %s) AS %s, min(%s) AS %s, max(%s) AS %s FROM %s GROUP BY ALL",
			strings.Join(keys, ", "), fsr, fsa, fsr, fsa, fsa, ro, ro, cs.carried)
		today := make([]string, len(names))
		for i, n := range names {
			today[i] = "t." + n
		}
		rows = fmt.Sprintf("SELECT %s, coalesce(c.%s, %s) AS %s, coalesce(c.%s, %s) AS %s, CAST(coalesce(c.%s + 1, 1) AS INTEGER) AS %s FROM %s AS t LEFT JOIN (%s) AS c ON %s",
			strings.Join(today, ", "), fsr, quoteLiteral(spec.RunID), fsr, fsa, asOf, fsa, ro, ro, cs.today, prev, strings.Join(on, " AND "))
		rows += fmt.Sprintf(" UNION ALL SELECT %s, c.%s, c.%s, CAST(c.%s + 1 AS INTEGER) FROM %s AS c ANTI JOIN %s AS t ON %s",
			strings.Join(prefixAll("c.", names), ", "), fsr, fsa, ro, cs.carried, cs.today, strings.Join(on, " AND "))
	}
	from := fsa
	if spec.AgeFrom != "" {
		// A row whose date is NULL ages from first seen.
		from = fmt.Sprintf("coalesce(CAST(%s AS DATE), %s)", quoteIdent(spec.AgeFrom), fsa)
	}
	return fmt.Sprintf("SELECT *, CAST(%s - %s AS INTEGER) AS %s FROM (%s)", asOf, from, quoteIdent(kalla.AgeDaysColumn), rows)
}

func prefixAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// CarryCounts implements kalla.Carrier.
func (s *Session) CarryCounts(ctx context.Context, alias, dir string) (kalla.CarriedSide, error) {
	var c kalla.CarriedSide
	cs, ok := s.carry[alias]
	if !ok {
		return c, fmt.Errorf("source %q carries nothing", alias)
	}
	var err error
	if cs.spec.MaxAgeDays != nil {
		name := kalla.ExpiredLeftFile
		if cs.spec.Side == "right" {
			name = kalla.ExpiredRightFile
		}
		if c.Expired, err = s.copyTo(ctx, "SELECT * FROM "+cs.expired, dir, name); err != nil {
			return c, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if cs.carried != "" {
		if c.Carried, err = s.count(ctx, cs.carried); err != nil {
			return c, err
		}
		on := make([]string, len(cs.spec.Keys))
		for i, k := range quoteAll(cs.spec.Keys) {
			on[i] = fmt.Sprintf("t.%s = c.%s", k, k)
		}
		if c.Replaced, err = s.count(ctx, fmt.Sprintf("(SELECT 1 FROM %s AS c SEMI JOIN %s AS t ON %s)", cs.carried, cs.today, strings.Join(on, " AND "))); err != nil {
			return c, err
		}
	}
	if dir == "" {
		return c, nil
	}
	unmatched, err := s.readable(filepath.Join(dir, cs.spec.File))
	if err != nil {
		return c, err
	}
	ro, age := quoteIdent(kalla.RunsOpenColumn), quoteIdent(kalla.AgeDaysColumn)
	var openBefore int64
	if openBefore, err = s.count(ctx, fmt.Sprintf("%s WHERE %s > 1", s.qualified(alias), ro)); err != nil {
		return c, err
	}
	var stillOpen int64
	var oldest sql.NullInt64
	b := &kalla.AgeBuckets{}
	q := fmt.Sprintf(`SELECT count(*) FILTER (%[1]s > 1),
		count(*) FILTER (%[2]s <= 0), count(*) FILTER (%[2]s BETWEEN 1 AND 7), count(*) FILTER (%[2]s BETWEEN 8 AND 30),
		count(*) FILTER (%[2]s BETWEEN 31 AND 90), count(*) FILTER (%[2]s > 90), max(%[2]s)
		FROM read_parquet(%[3]s)`, ro, age, quoteLiteral(unmatched))
	if err := s.conn.QueryRowContext(ctx, q).Scan(&stillOpen, &b.Days0, &b.Days1to7, &b.Days8to30, &b.Days31to90, &b.Over90, &oldest); err != nil {
		return c, fmt.Errorf("age the unmatched rows: %w", cleanError(err))
	}
	if oldest.Valid {
		b.OldestDays = &oldest.Int64
	}
	c.Cleared = openBefore - stillOpen
	c.Ageing = b
	return c, nil
}

// readable returns a path of the file at path the session's database may
// read: path itself in a folder it may write (and so read), else a link to
// it, or a copy, in the session's own folder. The output folder of a local
// job is made after the session's lockdown, like the files outDir moves.
func (s *Session) readable(path string) (string, error) {
	if s.canWrite(filepath.Dir(path)) {
		return path, nil
	}
	s.outs++
	local := filepath.Join(s.dir, fmt.Sprintf("read-%d-%s", s.outs, filepath.Base(path)))
	if err := os.Link(path, local); err == nil {
		return local, nil
	}
	if err := copyFile(path, local); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return local, nil
}
