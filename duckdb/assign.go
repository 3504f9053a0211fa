package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// greedyRounds bounds the rounds of mutual-best selection before the rest
// of an exclusive assignment is finished by a sequential walk in Go, and
// greedyWalkBelow is the count of remaining pairs under which the walk takes
// over at once. Tests lower them to exercise both paths.
var (
	greedyRounds    = 8
	greedyWalkBelow = int64(20000)
)

// assign writes into the table acc the candidate pairs of the table cand
// that rule's exclusivity keeps, and returns how many rows it left
// unmatched as ties.
//
// Pairs are ranked by the order_by columns (NULLs last), then the left key,
// then the right key, then every other column (so duplicate rows of a pair
// rank the same way every time). With one side exclusive, each of its rows
// keeps its best pair. With both, the result is the sequential greedy walk:
// take pairs best first, accept a pair when neither row is taken. It is
// reached in rounds: a pair that ranks best among the remaining pairs of
// both its rows (locally dominant) is accepted by the walk too, so each round
// accepts all such pairs and drops the pairs touching their rows; the walk
// in Go finishes what a few rounds leave (long chains need many rounds).
//
// With ties "leave_unmatched", a row of an exclusive side whose best
// order_by values are shared by candidates with two or more different rows
// of the other side is left unmatched (a tie), and all its pairs are dropped
// before the rest is assigned.
func (s *Session) assign(ctx context.Context, candName string, rule kalla.RuleSpec, accName string) (int64, error) {
	x := rule.Exclusive
	cand, acc := s.qualified(candName), s.qualified(accName)
	keys := [2][]string{quoteAll(rule.Left.ResultColumns), quoteAll(rule.Right.ResultColumns)}
	// A column already ranked on cannot break a tie again, so each column
	// is ranked on once (repeated sort keys cost time on every comparison).
	var order, orderCols []string
	add := func(col, expr string) {
		if !slices.Contains(orderCols, col) {
			order, orderCols = append(order, expr), append(orderCols, col)
		}
	}
	for _, o := range x.OrderBy {
		add(quoteIdent(o.Column), orderTerm(quoteIdent(o.Column), o.Desc))
	}
	cols, _, err := s.describe(ctx, "SELECT * FROM "+cand)
	if err != nil {
		return 0, err
	}
	for _, k := range append(append([]string{}, keys[0]...), keys[1]...) {
		add(k, k+" NULLS LAST")
	}
	for _, c := range cols {
		add(quoteIdent(c.Name), quoteIdent(c.Name)+" NULLS LAST")
	}
	// A pair whose key is NULL on an exclusive side identifies no row that
	// could be used once: it is no candidate.
	var where []string
	for side := range 2 {
		if x.Sides[side] {
			for _, k := range keys[side] {
				where = append(where, k+" IS NOT NULL")
			}
		}
	}
	pairs := "SELECT * FROM " + cand
	if len(where) > 0 {
		pairs += " WHERE " + strings.Join(where, " AND ")
	}

	var ties int64
	if x.LeaveTies {
		if pairs, ties, err = s.dropTies(ctx, pairs, candName, keys, x); err != nil {
			return 0, err
		}
	}

	if x.Sides[0] != x.Sides[1] {
		side := 0
		if x.Sides[1] {
			side = 1
		}
		// The side's own key is the same throughout its partition: ranking
		// on it again only slows the sort.
		var within, fields []string
		for i, c := range orderCols {
			if !slices.Contains(keys[side], c) {
				within = append(within, order[i])
				fields = append(fields, "_kalla_pair."+c+" IS NULL", "_kalla_pair."+c)
			}
		}
		q := fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM (%s) QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s) = 1",
			acc, pairs, strings.Join(keys[side], ", "), strings.Join(within, ", "))
		if !slices.ContainsFunc(x.OrderBy, func(o kalla.OrderKey) bool { return o.Desc }) {
			// All ascending: the row with the least (col IS NULL, col, …)
			// of each group is the QUALIFY's first, found by a grouped
			// arg_min 3-4x faster than the window's sort (5M rows, 12.5M
			// pairs). A struct compares each field ascending, hence DESC
			// keeps the QUALIFY.
			q = fmt.Sprintf("CREATE TABLE %s AS SELECT unnest(_kalla_best) FROM (SELECT arg_min(_kalla_pair, row(%s)) AS _kalla_best FROM (%s) AS _kalla_pair GROUP BY %s)",
				acc, strings.Join(fields, ", "), pairs, "_kalla_pair."+strings.Join(keys[side], ", _kalla_pair."))
		}
		err = s.exec(ctx, q)
	} else {
		err = s.greedy(ctx, pairs, keys, order, accName)
	}
	if err == nil && x.LeaveTies {
		// dropTies' copy of the candidates is as large as they are; the
		// tied keys stay when the rule explains (they are few).
		drop := []string{"DROP TABLE " + s.qualified(candName+"_t")}
		if !rule.Explain {
			drop = append(drop, "DROP TABLE IF EXISTS "+s.tiedTable(candName, 0), "DROP TABLE IF EXISTS "+s.tiedTable(candName, 1))
		}
		err = s.exec(ctx, drop...)
	}
	return ties, err
}

// dropTies returns pairs without the pairs of tied rows (see assign), read
// through a table of its own, and the number of tied rows; the tied rows'
// keys are left in the tables tiedTable(candName, side).
func (s *Session) dropTies(ctx context.Context, pairs, candName string, keys [2][]string, x *kalla.ExclusiveSpec) (string, int64, error) {
	var score []string
	for _, o := range x.OrderBy {
		score = append(score, orderTerm(quoteIdent(o.Column), o.Desc))
	}
	over := func(side int) string {
		if len(score) == 0 {
			return fmt.Sprintf("OVER (PARTITION BY %s)", strings.Join(keys[side], ", "))
		}
		return fmt.Sprintf("OVER (PARTITION BY %s ORDER BY %s)", strings.Join(keys[side], ", "), strings.Join(score, ", "))
	}
	base := s.qualified(candName + "_t")
	if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", base, pairs)); err != nil {
		return "", 0, err
	}
	var ties int64
	filtered := "SELECT * FROM " + base
	for side := range 2 {
		if !x.Sides[side] {
			continue
		}
		other := 1 - side
		tied := s.tiedTable(candName, side)
		// A tied row: its best-ranked candidates (rank 1 on the score)
		// reach two or more different rows of the other side.
		q := fmt.Sprintf(`CREATE TABLE %[1]s AS
SELECT %[2]s FROM (SELECT DISTINCT %[2]s, %[3]s FROM (SELECT *, rank() %[4]s AS _kalla_best FROM %[5]s) WHERE _kalla_best = 1)
GROUP BY %[2]s HAVING count(*) > 1`,
			tied, strings.Join(keys[side], ", "), strings.Join(keys[other], ", "), over(side), base)
		if err := s.exec(ctx, q); err != nil {
			return "", 0, fmt.Errorf("find ties: %w", err)
		}
		n, err := s.count(ctx, tied)
		if err != nil {
			return "", 0, err
		}
		ties += n
		conds := make([]string, len(keys[side]))
		for i, k := range keys[side] {
			conds[i] = fmt.Sprintf("p.%s = t.%s", k, k)
		}
		filtered = fmt.Sprintf("SELECT p.* FROM (%s) AS p ANTI JOIN %s AS t ON %s", filtered, tied, strings.Join(conds, " AND "))
	}
	return filtered, ties, nil
}

// greedy writes into acc the pairs of the sequential greedy walk over pairs
// in order (both sides exclusive).
func (s *Session) greedy(ctx context.Context, pairs string, keys [2][]string, order []string, accName string) error {
	acc := s.qualified(accName)
	ranked := s.qualified(accName + "_ranked")
	live := s.qualified(accName + "_live")
	won := s.qualified(accName + "_won")
	chosen := s.qualified(accName + "_chosen")
	// live holds only each pair's rank and keys, renamed so that the
	// rounds' SQL does not depend on the rule's column names.
	var liveCols []string
	var lk, rk []string
	for side, ks := range keys {
		for i, k := range ks {
			name := fmt.Sprintf("_kalla_%c%d", "lr"[side], i)
			liveCols = append(liveCols, fmt.Sprintf("%s AS %s", k, name))
			if side == 0 {
				lk = append(lk, name)
			} else {
				rk = append(rk, name)
			}
		}
	}
	if err := s.exec(ctx,
		fmt.Sprintf("CREATE TABLE %s AS SELECT *, row_number() OVER (ORDER BY %s) AS _kalla_rank FROM (%s)", ranked, strings.Join(order, ", "), pairs),
		fmt.Sprintf("CREATE TABLE %s AS SELECT _kalla_rank, %s FROM %s", live, strings.Join(liveCols, ", "), ranked),
		fmt.Sprintf("CREATE TABLE %s (_kalla_rank BIGINT)", chosen),
	); err != nil {
		return err
	}
	for round := 0; ; round++ {
		n, err := s.count(ctx, live)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if round >= greedyRounds || n < greedyWalkBelow {
			if err := s.walk(ctx, live, lk, rk, accName+"_chosen"); err != nil {
				return err
			}
			break
		}
		// The locally dominant pairs: the best of their left row's pairs
		// and of their right row's. Two window minima over the pairs are
		// about a third faster than intersecting two grouped minima and
		// joining back.
		if err := s.exec(ctx,
			fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS SELECT * FROM %[2]s
QUALIFY _kalla_rank = min(_kalla_rank) OVER (PARTITION BY %[3]s) AND _kalla_rank = min(_kalla_rank) OVER (PARTITION BY %[4]s)`,
				won, live, strings.Join(lk, ", "), strings.Join(rk, ", ")),
			fmt.Sprintf("INSERT INTO %s SELECT _kalla_rank FROM %s", chosen, won),
			fmt.Sprintf("CREATE OR REPLACE TABLE %[1]s AS SELECT * FROM %[1]s ANTI JOIN %[2]s AS a ON %[3]s ANTI JOIN %[2]s AS b ON %[4]s",
				live, won, joinOn(live, lk, "a", lk), joinOn(live, rk, "b", rk)),
		); err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
	}
	return s.exec(ctx,
		fmt.Sprintf("CREATE TABLE %s AS SELECT * EXCLUDE (_kalla_rank) FROM %s SEMI JOIN %s AS c ON %s._kalla_rank = c._kalla_rank ORDER BY %s._kalla_rank", acc, ranked, chosen, ranked, ranked),
		"DROP TABLE "+ranked, "DROP TABLE "+live, "DROP TABLE "+chosen, "DROP TABLE IF EXISTS "+won,
	)
}

// walk is the sequential greedy walk over the pairs of live, best first:
// it appends to the session's table chosen the rank of each pair whose rows
// are both free, and takes them.
func (s *Session) walk(ctx context.Context, live string, lk, rk []string, chosen string) error {
	q := fmt.Sprintf("SELECT _kalla_rank, dense_rank() OVER (ORDER BY %s) - 1, dense_rank() OVER (ORDER BY %s) - 1 FROM %s ORDER BY _kalla_rank",
		strings.Join(lk, ", "), strings.Join(rk, ", "), live)
	rows, err := s.conn.QueryContext(ctx, q)
	if err != nil {
		return cleanError(err)
	}
	var picked []int64
	var takenL, takenR []bool
	for rows.Next() {
		var rank, l, r int64
		if err := rows.Scan(&rank, &l, &r); err != nil {
			rows.Close()
			return err
		}
		for int64(len(takenL)) <= l {
			takenL = append(takenL, false)
		}
		for int64(len(takenR)) <= r {
			takenR = append(takenR, false)
		}
		if takenL[l] || takenR[r] {
			continue
		}
		takenL[l], takenR[r] = true, true
		picked = append(picked, rank)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return cleanError(err)
	}
	return s.conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), s.schema, chosen)
		if err != nil {
			return err
		}
		for _, r := range picked {
			if err := a.AppendRow(r); err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
}

// tiedTable is the table of the keys of side's tied rows of the rule whose
// candidates are the table candName.
func (s *Session) tiedTable(candName string, side int) string {
	return s.qualified(fmt.Sprintf("%s_tied%d", candName, side))
}
