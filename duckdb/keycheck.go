package duckdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/kalla-dev/kalla"
)

// checkKeysUnique fails a job whose primary key on one side is shared by a
// matched row and another row. The unmatched rows are the source
// anti-joined with the matched keys, so such a row would be in no output
// file at all: lost without a trace. The rows whose key was matched
// (inRows - unmatched) must be as many as the distinct matched keys;
// more means duplicate keys among them. Keys with a NULL column never
// equal anything: those rows are always unmatched, and not counted.
//
// It costs one DISTINCT over the matched keys per side, a fraction of the
// match; the duplicates are looked up only when the counts disagree.
func (s *Session) checkKeysUnique(ctx context.Context, alias string, srcCols []string, keys string, keyCols []string, inRows, unmatched int64) error {
	cols := strings.Join(quoteAll(keyCols), ", ")
	notNull := make([]string, len(keyCols))
	for i, c := range quoteAll(keyCols) {
		notNull[i] = c + " IS NOT NULL"
	}
	distinct, err := s.count(ctx, fmt.Sprintf("(SELECT DISTINCT %s FROM %s WHERE %s)", cols, keys, strings.Join(notNull, " AND ")))
	if err != nil {
		return fmt.Errorf("count the matched keys of %q: %w", alias, err)
	}
	if inRows-unmatched <= distinct {
		return nil
	}
	// An example for the message: a matched key that several rows have.
	q := fmt.Sprintf("SELECT %s, count(*) FROM %s AS src SEMI JOIN (SELECT DISTINCT %s FROM %s) AS m ON %s GROUP BY ALL HAVING count(*) > 1 LIMIT 1",
		keyText(srcCols, "src."), s.qualified(alias), cols, keys, joinOn("m", keyCols, "src", srcCols))
	var example string
	var n int64
	if err := s.conn.QueryRowContext(ctx, q).Scan(&example, &n); err != nil {
		return fmt.Errorf("find the duplicate keys of %q: %w", alias, cleanError(err))
	}
	return kalla.Invalid("primary_keys."+alias,
		"%s is not unique in %q: %d rows have %s = %s, which a match took, so a row sharing a matched row's key would be in no output file; declare columns that identify one row",
		keyNames(srcCols), alias, n, keyNames(srcCols), example)
}

// keyText is SQL giving a key's value as text, as the error shows it:
// 'A' for one column, ('A', 2) for several.
func keyText(cols []string, prefix string) string {
	q := prefixAll(prefix, quoteAll(cols))
	for i, c := range q {
		q[i] = fmt.Sprintf("coalesce('''' || replace(CAST(%s AS VARCHAR), '''', '''''') || '''', 'NULL')", c)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "'(' || " + strings.Join(q, " || ', ' || ") + " || ')'"
}

// keyNames names a key's columns as the error shows them.
func keyNames(cols []string) string {
	if len(cols) == 1 {
		return cols[0]
	}
	return "(" + strings.Join(cols, ", ") + ")"
}
