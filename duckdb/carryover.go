package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
)

var _ kalla.Carrier = (*Session)(nil)

// carrySide is one side of a carry-over job and the relations Carry made.
type carrySide struct {
	spec kalla.CarrySpec
	// today is today's rows (the attached table or view, renamed);
	// carried a view of the previous run's rows in today's types, read in
	// place from its Parquet files (an empty table when the job starts a
	// chain); present, filled once today's rows are loaded (CarryLoaded),
	// a table of the lineage of each carried key that today's source has
	// again, with n the number of today's rows of that key.
	today, carried, present string
	// alias is the view the rules read; expired selects the rows seen in
	// an earlier run past max_age_days.
	alias, expired string
	// carriedOnly counts the carried rows whose key is not in today's
	// source (the others are replaced); todaySeen today's rows whose key
	// was carried. Both are known once loaded.
	carriedOnly, todaySeen int64
	loaded                 bool
	// retyped is set when a column of today's CSV took its type from the
	// carried rows (it has no value today): a stage task of a split job,
	// which reads today's rows alone, would type it otherwise.
	retyped bool
	// cols are today's columns, which CarryLoaded writes the view with.
	cols []kalla.Column
}

// The lineage columns a carried file must hold; _kalla_age_days is
// computed again each run, and other _kalla_ columns are not carried.
var carriedLineage = []struct{ name, typ string }{
	{kalla.FirstSeenRunColumn, "VARCHAR"},
	{kalla.FirstSeenAtColumn, "DATE"},
	{kalla.RunsOpenColumn, "INTEGER"},
}

// seenColumn marks, inside the carry-over views, the rows seen in an
// earlier run: only they can expire.
const seenColumn = kalla.ReservedPrefix + "carry_seen"

// Carry implements kalla.Carrier. The attached alias is renamed (Load
// fills it under its new name) and replaced by a view of today's rows and
// the carried ones with lineage, so every later use of the alias (match
// rules, unmatched anti-joins) sees one set. A carried row whose key is in
// today's source gives way to today's row, which keeps its first_seen.
// The carried rows are read in place from the previous run's Parquet
// files, never copied: a large carried set (millions of open items) would
// otherwise be held twice, as the copy and as the rows that replace it.
func (s *Session) Carry(ctx context.Context, alias string, carried kalla.Source, spec kalla.CarrySpec) error {
	t, ok := s.tables[alias]
	if !ok {
		return fmt.Errorf("source %q is not attached", alias)
	}
	var prev *table
	retyped := false
	if carried != nil {
		var err error
		if prev, err = s.describeCarried(ctx, alias, carried, spec); err != nil {
			return err
		}
		before := slices.Clone(t.types)
		if err := s.typeFromCarried(ctx, t, prev); err != nil {
			return fmt.Errorf("type today's columns of %q from the carried rows: %w", alias, err)
		}
		retyped = !slices.Equal(before, t.types)
	}
	cs := &carrySide{spec: spec, cols: t.cols, retyped: retyped}
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
	if prev != nil {
		if err := s.loadCarried(ctx, alias, t, prev, cs); err != nil {
			return err
		}
	} else if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT *, NULL::VARCHAR AS %s, NULL::DATE AS %s, NULL::INTEGER AS %s FROM %s LIMIT 0",
		cs.carried, quoteIdent(kalla.FirstSeenRunColumn), quoteIdent(kalla.FirstSeenAtColumn), quoteIdent(kalla.RunsOpenColumn), cs.today)); err != nil {
		return fmt.Errorf("create carried rows: %w", err)
	}
	cs.present = s.qualified("_kalla_present_" + alias)
	cs.alias, cs.expired = s.qualified(alias), s.qualified("_kalla_expired_"+alias)
	q := lineageQueries(t.cols, cs)
	// Until CarryLoaded knows which parts are empty, the alias is the
	// whole union, so that the rules can be bound against it.
	if err := s.exec(ctx,
		fmt.Sprintf("CREATE TABLE %s AS %s", cs.present, q.present+" LIMIT 0"),
		fmt.Sprintf("CREATE VIEW %s AS %s", cs.alias, q.rows(true, true, cs.notExpired())),
	); err != nil {
		return fmt.Errorf("add lineage columns: %w", err)
	}
	if s.carry == nil {
		s.carry = map[string]*carrySide{}
	}
	s.carry[alias] = cs
	return nil
}

// notExpired is the condition on a carry-over view's rows that keeps the
// ones not expired; expiredIf the one that keeps the expired ones.
func (cs *carrySide) notExpired() string { return "NOT (" + cs.expiredIf() + ")" }

func (cs *carrySide) expiredIf() string {
	if cs.spec.MaxAgeDays == nil {
		return "false"
	}
	return fmt.Sprintf("%s AND %s > %d", quoteIdent(seenColumn), quoteIdent(kalla.AgeDaysColumn), *cs.spec.MaxAgeDays)
}

// describeCarried reads the columns of the previous run's file of the
// side of alias, and the table expression that reads it in place.
func (s *Session) describeCarried(ctx context.Context, alias string, src kalla.Source, spec kalla.CarrySpec) (*table, error) {
	dir := filepath.Join(s.dir, "carry-"+alias)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create carry dir: %w", err)
	}
	rd, err := src.Read(ctx, kalla.Whole, dir)
	if err != nil {
		return nil, err
	}
	if rd.Files == nil || rd.Files.Format != kalla.FormatParquet {
		return nil, fmt.Errorf("carried %s is not read as Parquet files", spec.File)
	}
	prev := &table{alias: "_kalla_prev_" + alias}
	if err := s.describeFiles(ctx, prev, rd.Files); err != nil {
		return nil, kalla.Invalid("", "%s: %v", spec.File, err)
	}
	return prev, nil
}

// loadCarried makes cs.carried a view of the previous run's file of the
// side, prev, each column in today's type. A column missing on either side, or whose
// values today's type cannot hold exactly, is a *kalla.ValidationError.
func (s *Session) loadCarried(ctx context.Context, alias string, t, prev *table, cs *carrySide) error {
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
	create := fmt.Sprintf("CREATE VIEW %s AS SELECT %s FROM %s", cs.carried, strings.Join(selects, ", "), prev.from)
	if p := cs.spec.Part; p != nil {
		// One partition of a split job: the hash is over today's names
		// and types, which the carried view has.
		create = fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM (SELECT %s FROM %s) WHERE ((%s) %% %d) = %d",
			cs.carried, strings.Join(selects, ", "), prev.from, p.Hash, p.Parts, p.Partition)
	}
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
// Each part selects the source's columns, the lineage columns and
// seenColumn, in that order, so that parts stack with UNION ALL.
type lineage struct {
	// present fills cs.present: the lineage of each carried key today's
	// source has again (the oldest, so that a key carried twice never
	// doubles today's row), with the count of today's rows of the key.
	// A NULL key equals nothing, as in matching, so such rows never
	// replace each other.
	present string
	// todayAll is today's rows, all first seen today: no join at all, for
	// a chain's first run or a day when no carried key comes again;
	// todayJoined today's rows, those of a present key with its lineage;
	// todaySeen only the latter; carriedOnly the carried rows whose key
	// is not in today's source.
	todayAll, todayJoined, todaySeen, carriedOnly string
}

// rows stacks the parts of lineage named by the flags and keeps those
// rows meeting where, without seenColumn.
func (q lineage) rows(joined, carried bool, where string) string {
	parts := []string{q.todayAll}
	if joined {
		parts[0] = q.todayJoined
	}
	if carried {
		parts = append(parts, q.carriedOnly)
	}
	return q.union(parts, where)
}

func (q lineage) union(parts []string, where string) string {
	return fmt.Sprintf("SELECT * EXCLUDE (%s) FROM (%s) WHERE %s", quoteIdent(seenColumn), strings.Join(parts, " UNION ALL "), where)
}

// lineageQueries writes the lineage queries of a side whose source has
// cols. Today's rows are joined only to cs.present, the carried keys they
// share, which is small next to a source and read from memory; the
// carried rows are read in place.
func lineageQueries(cols []kalla.Column, cs *carrySide) lineage {
	spec := cs.spec
	asOf := "DATE " + quoteLiteral(spec.AsOf)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.Name)
	}
	fsr, fsa, ro, seen := quoteIdent(kalla.FirstSeenRunColumn), quoteIdent(kalla.FirstSeenAtColumn), quoteIdent(kalla.RunsOpenColumn), quoteIdent(seenColumn)
	from := fsa
	if spec.AgeFrom != "" {
		// A row whose date is NULL ages from first seen.
		from = fmt.Sprintf("coalesce(CAST(%s AS DATE), %s)", quoteIdent(spec.AgeFrom), fsa)
	}
	aged := func(rows string) string {
		return fmt.Sprintf("SELECT *, CAST(%s - %s AS INTEGER) AS %s FROM (%s)", asOf, from, quoteIdent(kalla.AgeDaysColumn), rows)
	}
	keys := quoteAll(spec.Keys)
	join := joinOnKeys(spec.Keys)
	today := strings.Join(prefixAll("t.", names), ", ")
	// In today's rows left-joined to present, c's key is NULL exactly
	// when the row's key was not carried (present holds no NULL key).
	hit := "c." + keys[0] + " IS NOT NULL"
	n := quoteIdent(kalla.ReservedPrefix + "n")
	return lineage{
		present: fmt.Sprintf("SELECT %s, c.%s, c.%s, c.%s, count(*) AS %s FROM (SELECT %s, arg_min(%s, %s) AS %s, min(%s) AS %s, max(%s) AS %s FROM %s WHERE %s GROUP BY ALL) AS c JOIN %s AS t ON %s GROUP BY ALL",
			strings.Join(prefixAll("c.", keys), ", "), fsr, fsa, ro, n,
			strings.Join(keys, ", "), fsr, fsa, fsr, fsa, fsa, ro, ro, cs.carried, notNull(keys), cs.today, join),
		todayAll: aged(fmt.Sprintf("SELECT %s, %s AS %s, %s AS %s, CAST(1 AS INTEGER) AS %s, false AS %s FROM %s AS t",
			today, quoteLiteral(spec.RunID), fsr, asOf, fsa, ro, seen, cs.today)),
		todayJoined: aged(fmt.Sprintf("SELECT %[1]s, CASE WHEN %[2]s THEN c.%[3]s ELSE %[4]s END AS %[3]s, CASE WHEN %[2]s THEN c.%[5]s ELSE %[6]s END AS %[5]s, "+
			"CAST(CASE WHEN %[2]s THEN c.%[7]s + 1 ELSE 1 END AS INTEGER) AS %[7]s, %[2]s AS %[8]s FROM %[9]s AS t LEFT JOIN %[10]s AS c ON %[11]s",
			today, hit, fsr, quoteLiteral(spec.RunID), fsa, asOf, ro, seen, cs.today, cs.present, join)),
		todaySeen: aged(fmt.Sprintf("SELECT %[1]s, c.%[2]s, c.%[3]s, CAST(c.%[4]s + 1 AS INTEGER) AS %[4]s, true AS %[5]s FROM %[6]s AS t JOIN %[7]s AS c ON %[8]s",
			today, fsr, fsa, ro, seen, cs.today, cs.present, join)),
		carriedOnly: aged(fmt.Sprintf("SELECT %[1]s, t.%[2]s, t.%[3]s, CAST(t.%[4]s + 1 AS INTEGER) AS %[4]s, true AS %[5]s FROM %[6]s AS t ANTI JOIN %[7]s AS c ON %[8]s",
			today, fsr, fsa, ro, seen, cs.carried, cs.present, join)),
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
// loaded, it stores the lineage of the carried keys today's source has
// again, counts the rows seen in an earlier run, and writes the alias's
// view again without its empty parts: a join or union over today's rows
// costs up to half the match of a Parquet source read in place, and a
// chain's first run, or a day when no carried key comes again, needs
// neither.
func (s *Session) CarryLoaded(ctx context.Context, alias string) error {
	cs, ok := s.carry[alias]
	if !ok {
		return fmt.Errorf("source %q carries nothing", alias)
	}
	q := lineageQueries(cs.cols, cs)
	res, err := s.conn.ExecContext(ctx, "INSERT INTO "+cs.present+" "+q.present)
	if err != nil {
		return fmt.Errorf("find today's rows of carried keys: %w", cleanError(err))
	}
	present, err := res.RowsAffected()
	if err != nil {
		return err
	}
	var seen sql.NullInt64
	if err := s.conn.QueryRowContext(ctx, fmt.Sprintf("SELECT sum(%s) FROM %s", quoteIdent(kalla.ReservedPrefix+"n"), cs.present)).Scan(&seen); err != nil {
		return fmt.Errorf("count today's rows of carried keys: %w", cleanError(err))
	}
	cs.todaySeen = seen.Int64
	if cs.carriedOnly, err = s.count(ctx, fmt.Sprintf("%s AS t ANTI JOIN %s AS c ON %s", cs.carried, cs.present, joinOnKeys(cs.spec.Keys))); err != nil {
		return fmt.Errorf("count the carried rows kept: %w", err)
	}
	joined, carried := present > 0, cs.carriedOnly > 0
	var seenParts []string
	if joined {
		seenParts = append(seenParts, q.todaySeen)
	}
	if carried {
		seenParts = append(seenParts, q.carriedOnly)
	}
	expired := q.union(seenParts, cs.expiredIf())
	if len(seenParts) == 0 {
		expired = q.rows(false, false, "false")
	}
	if err := s.exec(ctx,
		fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", cs.alias, q.rows(joined, carried, cs.notExpired())),
		fmt.Sprintf("CREATE VIEW %s AS %s", cs.expired, expired),
	); err != nil {
		return fmt.Errorf("write the rows of %q again: %w", alias, err)
	}
	cs.loaded = true
	return nil
}

// joinOnKeys is the condition joining t and c on keys.
func joinOnKeys(keys []string) string {
	on := make([]string, len(keys))
	for i, k := range quoteAll(keys) {
		on[i] = fmt.Sprintf("t.%s = c.%s", k, k)
	}
	return strings.Join(on, " AND ")
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
	// The rows seen in an earlier run and not expired were open at the
	// start of the run; those of them still unmatched were not cleared.
	openBefore := cs.carriedOnly + cs.todaySeen - c.Expired
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
