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

// carrySide is one side of a carry-over job and the relations Carry made.
type carrySide struct {
	spec kalla.CarrySpec
	// today is today's rows (the attached table or view, renamed);
	// carried a table of the previous run's rows in today's types (empty
	// when the job starts a chain); seen a table of the lineage of each
	// carried key. before is a table of the rows seen in an earlier run,
	// filled once today's rows are loaded (CarryLoaded); expired a view of
	// those past max_age_days.
	today, carried, seen, before, expired string
	// carriedOnly counts the carried rows whose key is not in today's
	// source (the others are replaced).
	carriedOnly int64
	// fill are the statements CarryLoaded runs, in order: the carried
	// rows kept, then today's rows of carried keys; loaded says it ran.
	fill   [2]string
	loaded bool
	// alias, q and expiredIf are what CarryLoaded needs to write the
	// alias's view again once it knows which parts are empty.
	alias, expiredIf string
	q                lineage
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

	cs.carried = s.qualified("_kalla_carried_" + alias)
	if carried != nil {
		if err := s.loadCarried(ctx, alias, t, carried, cs); err != nil {
			return err
		}
	} else if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT *, NULL::VARCHAR AS %s, NULL::DATE AS %s, NULL::INTEGER AS %s FROM %s LIMIT 0",
		cs.carried, quoteIdent(kalla.FirstSeenRunColumn), quoteIdent(kalla.FirstSeenAtColumn), quoteIdent(kalla.RunsOpenColumn), cs.today)); err != nil {
		return fmt.Errorf("create carried rows: %w", err)
	}
	cs.seen, cs.before = s.qualified("_kalla_seen_"+alias), s.qualified("_kalla_before_"+alias)
	cs.expired = s.qualified("_kalla_expired_" + alias)
	q := lineageQueries(t.cols, cs)
	expired := "false"
	if spec.MaxAgeDays != nil {
		expired = fmt.Sprintf("%s > %d", quoteIdent(kalla.AgeDaysColumn), *spec.MaxAgeDays)
	}
	cs.fill = [2]string{"INSERT INTO " + cs.before + " " + q.carriedOnly, "INSERT INTO " + cs.before + " " + q.todaySeen}
	cs.alias, cs.expiredIf, cs.q = s.qualified(alias), expired, q
	if err := s.exec(ctx,
		fmt.Sprintf("CREATE TABLE %s AS %s", cs.seen, q.seen),
		fmt.Sprintf("CREATE TABLE %s AS %s LIMIT 0", cs.before, q.todaySeen),
		fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s WHERE %s", cs.expired, cs.before, expired),
		fmt.Sprintf("CREATE VIEW %s AS %s UNION ALL SELECT * FROM %s WHERE NOT (%s)", s.qualified(alias), q.todayNew, cs.before, expired),
	); err != nil {
		return fmt.Errorf("add lineage columns: %w", err)
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

// lineage are the queries that give a side's rows their lineage columns.
type lineage struct {
	// seen is the lineage of each carried key: the oldest, so that a key
	// carried twice never doubles today's row.
	seen string
	// todayNew selects today's rows whose key was not carried (first seen
	// today), todaySeen today's rows whose key was (they replace the
	// carried row and keep its first seen), carriedOnly the carried rows
	// whose key is not in today's source. A NULL key equals nothing, as
	// in matching, so such rows never replace each other.
	todayNew, todaySeen, carriedOnly string
	// todayAll is todayNew when no carried key is in today's source: no
	// join at all.
	todayAll string
}

// lineageQueries writes the lineage queries of a side whose source has
// cols. Every part reads today's rows once, against the small seen table,
// so that a source read in place (Parquet) is not joined twice per use.
func lineageQueries(cols []kalla.Column, cs *carrySide) lineage {
	spec := cs.spec
	asOf := "DATE " + quoteLiteral(spec.AsOf)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.Name)
	}
	fsr, fsa, ro := quoteIdent(kalla.FirstSeenRunColumn), quoteIdent(kalla.FirstSeenAtColumn), quoteIdent(kalla.RunsOpenColumn)
	from := fsa
	if spec.AgeFrom != "" {
		// A row whose date is NULL ages from first seen.
		from = fmt.Sprintf("coalesce(CAST(%s AS DATE), %s)", quoteIdent(spec.AgeFrom), fsa)
	}
	aged := func(rows string) string {
		return fmt.Sprintf("SELECT *, CAST(%s - %s AS INTEGER) AS %s FROM (%s)", asOf, from, quoteIdent(kalla.AgeDaysColumn), rows)
	}
	keys := quoteAll(spec.Keys)
	on := make([]string, len(keys))
	for i, k := range keys {
		on[i] = fmt.Sprintf("t.%s = c.%s", k, k)
	}
	join := strings.Join(on, " AND ")
	today := strings.Join(prefixAll("t.", names), ", ")
	return lineage{
		seen: fmt.Sprintf("SELECT %s, arg_min(%s, %s) AS %s, min(%s) AS %s, max(%s) AS %s FROM %s WHERE %s GROUP BY ALL",
			strings.Join(keys, ", "), fsr, fsa, fsr, fsa, fsa, ro, ro, cs.carried, notNull(keys)),
		todayNew: aged(fmt.Sprintf("SELECT %s, %s AS %s, %s AS %s, CAST(1 AS INTEGER) AS %s FROM %s AS t ANTI JOIN %s AS c ON %s",
			today, quoteLiteral(spec.RunID), fsr, asOf, fsa, ro, cs.today, cs.seen, join)),
		todayAll: aged(fmt.Sprintf("SELECT %s, %s AS %s, %s AS %s, CAST(1 AS INTEGER) AS %s FROM %s AS t",
			today, quoteLiteral(spec.RunID), fsr, asOf, fsa, ro, cs.today)),
		todaySeen: aged(fmt.Sprintf("SELECT %s, c.%s AS %s, c.%s AS %s, CAST(c.%s + 1 AS INTEGER) AS %s FROM %s AS t JOIN %s AS c ON %s",
			today, fsr, fsr, fsa, fsa, ro, ro, cs.today, cs.seen, join)),
		carriedOnly: aged(fmt.Sprintf("SELECT %s, c.%s, c.%s, CAST(c.%s + 1 AS INTEGER) FROM %s AS c ANTI JOIN %s AS t ON %s",
			strings.Join(prefixAll("c.", names), ", "), fsr, fsa, ro, cs.carried, cs.today, join)),
	}
}

// notNull is the condition that no column of cols is NULL.
func notNull(cols []string) string {
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = c + " IS NOT NULL"
	}
	return strings.Join(conds, " AND ")
}

// CarryLoaded implements kalla.Carrier: once today's rows of alias are
// loaded, it stores the rows seen in an earlier run (the carried rows
// kept, and today's rows of carried keys), which expiry, the alias and the
// counts then read without joining today's rows again.
func (s *Session) CarryLoaded(ctx context.Context, alias string) error {
	cs, ok := s.carry[alias]
	if !ok {
		return fmt.Errorf("source %q carries nothing", alias)
	}
	res, err := s.conn.ExecContext(ctx, cs.fill[0])
	if err != nil {
		return fmt.Errorf("keep the carried rows: %w", cleanError(err))
	}
	if cs.carriedOnly, err = res.RowsAffected(); err != nil {
		return err
	}
	res, err = s.conn.ExecContext(ctx, cs.fill[1])
	if err != nil {
		return fmt.Errorf("find today's rows of carried keys: %w", cleanError(err))
	}
	todaySeen, err := res.RowsAffected()
	if err != nil {
		return err
	}
	// The view the rules were bound against, without its empty parts: a
	// join or union over today's rows costs up to half the match of a
	// Parquet source read in place, and a chain's first run, or a day
	// when no carried key comes again, needs neither.
	parts := []string{cs.q.todayNew}
	if todaySeen == 0 {
		parts[0] = cs.q.todayAll
	}
	kept, err := s.count(ctx, fmt.Sprintf("%s WHERE NOT (%s)", cs.before, cs.expiredIf))
	if err != nil {
		return err
	}
	if kept > 0 {
		parts = append(parts, fmt.Sprintf("SELECT * FROM %s WHERE NOT (%s)", cs.before, cs.expiredIf))
	}
	if err := s.exec(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", cs.alias, strings.Join(parts, " UNION ALL "))); err != nil {
		return fmt.Errorf("write the rows of %q again: %w", alias, err)
	}
	cs.loaded = true
	return nil
}

// CarryCounts implements kalla.Carrier.
func (s *Session) CarryCounts(ctx context.Context, alias, dir string) (kalla.CarriedSide, error) {
	var c kalla.CarriedSide
	cs, ok := s.carry[alias]
	if !ok {
		return c, fmt.Errorf("source %q carries nothing", alias)
	}
	if !cs.loaded {
		return c, fmt.Errorf("the carried rows of %q were never stored (CarryLoaded)", alias)
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
	if c.Carried, err = s.count(ctx, cs.carried); err != nil {
		return c, err
	}
	c.Replaced = c.Carried - cs.carriedOnly
	if dir == "" {
		return c, nil
	}
	unmatched, err := s.readable(filepath.Join(dir, cs.spec.File))
	if err != nil {
		return c, err
	}
	ro, age := quoteIdent(kalla.RunsOpenColumn), quoteIdent(kalla.AgeDaysColumn)
	var openBefore int64
	if openBefore, err = s.count(ctx, cs.before); err != nil {
		return c, err
	}
	openBefore -= c.Expired
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
