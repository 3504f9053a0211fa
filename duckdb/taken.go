package duckdb

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// takenKeys are the keys of each side that a waterfall's rules (and the
// confirmed pairs) took so far, each with _kalla_by, the index of the rule
// that took it. Each side's are a view stacking the key columns of every
// rule's kept pairs, not a table they are copied into: the pairs are
// tables already, and copying their keys cost about 0.06 s a side on the
// 5M benchmark (6% of a one-rule job's run) for nothing. Later rules'
// remaining rows, the unmatched rows, explain and the key check read the
// view as they read the table.
type takenKeys struct {
	// view is each side's view, named as the table was.
	view [2]string
	// base selects no row, with each side's key columns under their
	// source names and types; parts are the rules' keys after it.
	base  [2]string
	parts [2][]string
	// types are each side's key columns' DuckDB types.
	types [2][]string
}

// takenName is the name of side's taken keys.
var takenName = [2]string{"_kalla_taken_left", "_kalla_taken_right"}

// newTaken creates the views of the keys taken in the sources aliases,
// whose key columns are srcKeys, empty until rules record theirs.
func (s *Session) newTaken(ctx context.Context, aliases [2]string, srcKeys [2][]string) (*takenKeys, error) {
	t := &takenKeys{}
	for side, alias := range aliases {
		t.view[side] = s.qualified(takenName[side])
		cols := strings.Join(quoteAll(srcKeys[side]), ", ")
		// _kalla_by is the index of the rule that took a key, for explain.
		t.base[side] = fmt.Sprintf("SELECT %s, 0::INTEGER AS _kalla_by FROM %s LIMIT 0", cols, s.qualified(alias))
		var err error
		if _, t.types[side], err = s.describe(ctx, "SELECT "+cols+" FROM "+s.qualified(alias)); err != nil {
			return nil, fmt.Errorf("create taken keys of %q: %w", alias, err)
		}
		if err := s.exec(ctx, fmt.Sprintf("CREATE VIEW %s AS %s", t.view[side], t.base[side])); err != nil {
			return nil, fmt.Errorf("create taken keys of %q: %w", alias, err)
		}
	}
	return t, nil
}

// record adds the keys of side that rule by took: the columns cols of
// the table acc. Keys of another type than the source's are cast into a
// table of their own at once, as copying them into a table of the
// source's types did, so that a key that does not convert fails here.
func (s *Session) record(ctx context.Context, t *takenKeys, side, by int, acc string, cols []string) error {
	sel := strings.Join(quoteAll(cols), ", ")
	_, types, err := s.describe(ctx, "SELECT "+sel+" FROM "+acc)
	if err != nil {
		return err
	}
	part := fmt.Sprintf("SELECT %s, %d::INTEGER AS _kalla_by FROM %s", sel, by, acc)
	if !slices.Equal(types, t.types[side]) {
		cast := make([]string, len(cols))
		for i, c := range cols {
			cast[i] = fmt.Sprintf("CAST(%s AS %s)", quoteIdent(c), t.types[side][i])
		}
		table := s.qualified(fmt.Sprintf("%s_%d", takenName[side], len(t.parts[side])))
		if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT %s, %d::INTEGER AS _kalla_by FROM %s", table, strings.Join(cast, ", "), by, acc)); err != nil {
			return err
		}
		part = "SELECT * FROM " + table
	}
	t.parts[side] = append(t.parts[side], part)
	all := append([]string{"SELECT * FROM (" + t.base[side] + ")"}, t.parts[side]...)
	return s.exec(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", t.view[side], strings.Join(all, " UNION ALL ")))
}
