package duckdb

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

var _ kalla.SplitSession = (*Session)(nil)

// partColumn is the column PARTITION_BY splits on; it is not written into
// the files.
const partColumn = "__kalla_part"

// WritePartitions writes the rows of alias into parts folders by hashExpr.
// Columns whose type Parquet does not carry exactly (HUGEINT is written as
// DOUBLE, an ENUM as VARCHAR) are written as text and retyped on reading.
func (s *Session) WritePartitions(ctx context.Context, alias, hashExpr string, parts int, dir string) (kalla.StagedSource, error) {
	var out kalla.StagedSource
	if parts < 1 {
		return out, fmt.Errorf("partition count %d must be at least 1", parts)
	}
	cols, types, err := s.describe(ctx, "SELECT * FROM "+s.qualified(alias))
	if err != nil {
		return out, err
	}
	list := make([]string, len(cols))
	for i, c := range cols {
		out.Columns = append(out.Columns, kalla.StagedColumn{Name: c.Name, Type: types[i]})
		list[i] = quoteIdent(c.Name)
		if !parquetExact(types[i]) {
			list[i] = fmt.Sprintf("CAST(%s AS VARCHAR) AS %s", quoteIdent(c.Name), quoteIdent(c.Name))
		}
	}
	// Mkdir, not MkdirAll: if the job's staging folder is gone, the job
	// ended and this task must not recreate it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return out, err
	}
	q := fmt.Sprintf("COPY (SELECT %s, (%s) %% %d AS %s FROM %s) TO %s (FORMAT parquet, PARTITION_BY (%s), OVERWRITE_OR_IGNORE)",
		strings.Join(list, ", "), hashExpr, parts, partColumn, s.qualified(alias), quoteLiteral(dir), partColumn)
	res, err := s.conn.ExecContext(ctx, q)
	if err != nil {
		return out, cleanError(err)
	}
	if out.Rows, err = res.RowsAffected(); err != nil {
		return out, err
	}
	// Hive-style folder names would make readers add the partition column
	// back; p<k> keeps the files' columns those of the source.
	for k := range parts {
		hive := filepath.Join(dir, fmt.Sprintf("%s=%d", partColumn, k))
		plain := filepath.Join(dir, fmt.Sprintf("p%d", k))
		if _, err := os.Stat(hive); err == nil {
			if err := os.Rename(hive, plain); err != nil {
				return out, err
			}
			continue
		}
		if err := os.Mkdir(plain, 0o755); err != nil {
			return out, err
		}
		empty := fmt.Sprintf("COPY (SELECT %s FROM %s LIMIT 0) TO %s (FORMAT parquet)", strings.Join(list, ", "), s.qualified(alias), quoteLiteral(filepath.Join(plain, "empty.parquet")))
		if _, err := s.conn.ExecContext(ctx, empty); err != nil {
			return out, cleanError(err)
		}
	}
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			out.Bytes += info.Size()
		}
		return err
	})
	return out, err
}

// parquetExact reports whether a column of DuckDB type typ reads back from
// Parquet with the same type and value.
func parquetExact(typ string) bool {
	t := strings.ToUpper(typ)
	for _, lossy := range []string{"HUGEINT", "UHUGEINT", "ENUM", "BIT", "UNION", "VARINT", "BIGNUM"} {
		if strings.Contains(t, lossy) {
			return false
		}
	}
	return true
}

// stagedSelect reads staged files with the source's column types.
func stagedSelect(in kalla.StagedSet) (string, error) {
	if len(in.Files) == 0 {
		return "", fmt.Errorf("no staged files")
	}
	files := make([]string, len(in.Files))
	for i, f := range in.Files {
		files[i] = quoteLiteral(f)
	}
	list := make([]string, len(in.Columns))
	for i, c := range in.Columns {
		list[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", quoteIdent(c.Name), c.Type, quoteIdent(c.Name))
	}
	sel := "*"
	if len(list) > 0 {
		sel = strings.Join(list, ", ")
	}
	return fmt.Sprintf("SELECT %s FROM read_parquet([%s], hive_partitioning = false)", sel, strings.Join(files, ", ")), nil
}

// AttachStaged creates alias from staged files.
func (s *Session) AttachStaged(ctx context.Context, alias string, in kalla.StagedSet) (int64, error) {
	sel, err := stagedSelect(in)
	if err != nil {
		return 0, err
	}
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", s.qualified(alias), sel)); err != nil {
		return 0, cleanError(err)
	}
	cols := make([]kalla.Column, len(in.Columns))
	types := make([]string, len(in.Columns))
	for i, c := range in.Columns {
		cols[i] = kalla.Column{Name: c.Name, Type: parseType(c.Type)}
		types[i] = c.Type
	}
	s.tables[alias] = &table{alias: alias, cols: cols, types: types}
	var n int64
	err = s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+s.qualified(alias)).Scan(&n)
	return n, err
}

// MergeResults writes the union of the partial results into dir. For a
// broadcast side, every match task saw all of its rows, so its unmatched
// rows are those in no partition's matches: the same anti-join Reconcile
// runs, against the union of the matched keys.
func (s *Session) MergeResults(ctx context.Context, m kalla.MergeSpec, dir string) (kalla.Counts, error) {
	var c kalla.Counts
	union := func(files []string) string {
		q, _ := stagedSelect(kalla.StagedSet{Files: files})
		return q
	}
	if len(m.Matched) == 0 {
		return c, fmt.Errorf("no partial results")
	}
	var err error
	if c.Matched, err = s.copyTo(ctx, union(m.Matched), filepath.Join(dir, kalla.MatchedFile)); err != nil {
		return c, fmt.Errorf("write %s: %w", kalla.MatchedFile, err)
	}
	names := [2]string{kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile}
	keys := [2]kalla.KeyMapping{m.Spec.Left, m.Spec.Right}
	var counts [2]int64
	for side := range 2 {
		path := filepath.Join(dir, names[side])
		if side != m.Broadcast {
			if counts[side], err = s.copyTo(ctx, union(m.Unmatched[side]), path); err != nil {
				return c, fmt.Errorf("write %s: %w", names[side], err)
			}
			continue
		}
		k := keys[side]
		if _, err := s.AttachStaged(ctx, k.Alias, m.BroadcastFiles); err != nil {
			return c, fmt.Errorf("load broadcast side %q: %w", k.Alias, err)
		}
		cols := make([]string, len(k.ResultColumns))
		for i, rc := range k.ResultColumns {
			cols[i] = quoteIdent(rc)
		}
		keysQ := strings.Replace(union(m.Matched), "SELECT *", "SELECT "+strings.Join(cols, ", "), 1)
		if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", s.qualified(matchedTable), keysQ)); err != nil {
			return c, fmt.Errorf("collect matched keys: %w", cleanError(err))
		}
		if counts[side], err = s.copyTo(ctx, s.unmatchedSQL(k), path); err != nil {
			return c, fmt.Errorf("write %s: %w", names[side], err)
		}
	}
	c.UnmatchedLeft, c.UnmatchedRight = counts[0], counts[1]
	return c, nil
}
