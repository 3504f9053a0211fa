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
// file at all: lost without a trace.
//
// The rows whose key was matched (inRows - unmatched) can be no more than
// the pairs that hold a key of the side (pairs): more means several rows
// behind one matched key. The check is two counts the job already has, so
// it is free; an exact one (a DISTINCT over the matched keys) cost a third
// of the benchmark's run. It is exact when each key is in one pair at most
// (a side every rule is exclusive on); when a rule can match a key twice
// (one invoice, two payments), a duplicate key hidden behind such a double
// match is not seen. The duplicates are looked up only to name one.
//
// A pair whose key has a NULL takes no row out of the unmatched ones (the
// anti-join compares with =), so it is not counted: it would hide a
// duplicate key elsewhere. Counting them reads the key columns once.
func (s *Session) checkKeysUnique(ctx context.Context, alias string, srcCols []string, keys string, keyCols []string, inRows, unmatched, pairs int64) error {
	cols := strings.Join(quoteAll(keyCols), ", ")
	var nulls int64
	if err := s.conn.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM %s AS m WHERE %s", keys, strings.Join(prefixAll("m.", quoteAll(keyCols)), " IS NULL OR ")+" IS NULL")).Scan(&nulls); err != nil {
		return fmt.Errorf("count the matched keys of %q with a NULL: %w", alias, cleanError(err))
	}
	if inRows-unmatched <= pairs-nulls {
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
