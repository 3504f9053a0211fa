package duckdb_test

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file is the independent reference for exclusive rules: a plain
// sort-and-scan in Go over candidate pairs that the tests build from the
// same source rows as the rule's match_sql, written from the contract
// (issue 13, rules.go's Exclusive) and sharing no code with assign.go.

// val is one value of a result column: an integer, a string, or NULL.
type val struct {
	null  bool
	isStr bool
	i     int64
	s     string
}

func ival(i int64) val  { return val{i: i} }
func sval(s string) val { return val{isStr: true, s: s} }
func nullVal() val      { return val{null: true} }
func (v val) text() string {
	switch {
	case v.null:
		return "NULL"
	case v.isStr:
		return v.s
	}
	return strconv.FormatInt(v.i, 10)
}

// compareVal orders a and b ascending with NULLs last; desc reverses the
// non-NULL values only (NULLS LAST either way, as the contract says).
func compareVal(a, b val, desc bool) int {
	switch {
	case a.null && b.null:
		return 0
	case a.null:
		return 1
	case b.null:
		return -1
	}
	c := cmp.Compare(a.i, b.i)
	if a.isStr {
		c = strings.Compare(a.s, b.s)
	}
	if desc {
		return -c
	}
	return c
}

// rowText is a row as the tests compare them: values joined by "|".
func rowText(vals []val) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = v.text()
	}
	return strings.Join(parts, "|")
}

// refOrder is one order_by entry: a result column index and its direction.
type refOrder struct {
	col  int
	desc bool
}

// refRule is an exclusive rule as the reference sees it: which result
// columns hold each side's key, the order_by entries, the exclusive sides
// and the ties setting.
type refRule struct {
	keys      [2][]int
	order     []refOrder
	sides     [2]bool
	leaveTies bool
}

// refOutcome is what the reference says an exclusive rule does with a set
// of candidate pairs.
type refOutcome struct {
	// accepted are the kept pairs, in rank order.
	accepted [][]val
	// eligible are the pairs left after dropping NULL keys on exclusive
	// sides and the pairs of tied rows: what the assignment chose among.
	eligible [][]val
	// ties counts the rows left unmatched as ties, both sides summed.
	ties int64
}

// keyOf is the identity of side's row in pair p; ok is false when a key
// column is NULL.
func (r refRule) keyOf(p []val, side int) (string, bool) {
	var b strings.Builder
	for _, c := range r.keys[side] {
		if p[c].null {
			return "", false
		}
		b.WriteString(p[c].text())
		b.WriteByte('|')
	}
	return b.String(), true
}

// ranking is the contract's order of pairs with ncols result columns:
// order_by, then the left key, then the right key, then every other column
// in result order (ascending, all NULLs last).
func (r refRule) ranking(ncols int) []refOrder {
	out := slices.Clone(r.order)
	isKey := make([]bool, ncols)
	for side := range 2 {
		for _, k := range r.keys[side] {
			isKey[k] = true
			out = append(out, refOrder{col: k})
		}
	}
	for i := range ncols {
		if !isKey[i] {
			out = append(out, refOrder{col: i})
		}
	}
	return out
}

// compareBy compares pairs a and b column by column along by.
func compareBy(a, b []val, by []refOrder) int {
	for _, o := range by {
		if c := compareVal(a[o.col], b[o.col], o.desc); c != 0 {
			return c
		}
	}
	return 0
}

// run applies the rule to the candidate pairs.
func (r refRule) run(pairs [][]val) refOutcome {
	var out refOutcome
	var live [][]val
	for _, p := range pairs {
		ok := true
		for side := range 2 {
			if _, has := r.keyOf(p, side); r.sides[side] && !has {
				ok = false
			}
		}
		if ok {
			live = append(live, p)
		}
	}
	if r.leaveTies {
		live, out.ties = r.dropTies(live)
	}
	out.eligible = live
	sorted := slices.Clone(live)
	if len(sorted) > 0 {
		by := r.ranking(len(sorted[0]))
		slices.SortStableFunc(sorted, func(a, b []val) int { return compareBy(a, b, by) })
	}
	taken := [2]map[string]bool{{}, {}}
	for _, p := range sorted {
		lk, _ := r.keyOf(p, 0)
		rk, _ := r.keyOf(p, 1)
		if (r.sides[0] && taken[0][lk]) || (r.sides[1] && taken[1][rk]) {
			continue
		}
		if r.sides[0] {
			taken[0][lk] = true
		}
		if r.sides[1] {
			taken[1][rk] = true
		}
		out.accepted = append(out.accepted, p)
	}
	return out
}

// dropTies finds, on each exclusive side independently, the rows whose best
// order_by values are shared by pairs with two or more different rows of
// the other side, and drops every pair of such a row.
func (r refRule) dropTies(pairs [][]val) ([][]val, int64) {
	scoreCmp := func(a, b []val) int { return compareBy(a, b, r.order) }
	tied := [2]map[string]bool{{}, {}}
	var n int64
	for side := range 2 {
		if !r.sides[side] {
			continue
		}
		best := map[string][]val{}
		for _, p := range pairs {
			k, _ := r.keyOf(p, side)
			if b, ok := best[k]; !ok || scoreCmp(p, b) < 0 {
				best[k] = p
			}
		}
		partners := map[string]map[string]bool{}
		for _, p := range pairs {
			k, _ := r.keyOf(p, side)
			if scoreCmp(p, best[k]) != 0 {
				continue
			}
			// The other side's key as DISTINCT sees it: NULLs are equal.
			var ov []val
			for _, c := range r.keys[1-side] {
				ov = append(ov, p[c])
			}
			other := rowText(ov)
			if partners[k] == nil {
				partners[k] = map[string]bool{}
			}
			partners[k][other] = true
		}
		for k, ps := range partners {
			if len(ps) >= 2 {
				tied[side][k] = true
				n++
			}
		}
	}
	var kept [][]val
	for _, p := range pairs {
		lk, _ := r.keyOf(p, 0)
		rk, _ := r.keyOf(p, 1)
		if (r.sides[0] && tied[0][lk]) || (r.sides[1] && tied[1][rk]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, n
}

// checkInvariants fails t unless got (the pairs Kalla kept, as rows of
// result values) uses no row of an exclusive side twice, keeps only
// eligible pairs, and is maximal: no eligible pair has both rows free
// (with one side exclusive: no row of that side with an eligible pair is
// left without one).
func (r refRule) checkInvariants(t *testing.T, what string, got, eligible [][]val) {
	t.Helper()
	isEligible := map[string]bool{}
	for _, p := range eligible {
		isEligible[rowText(p)] = true
	}
	used := [2]map[string]bool{{}, {}}
	failed := 0
	for _, p := range got {
		if !isEligible[rowText(p)] {
			t.Errorf("%s: kept pair %q is not an eligible candidate", what, rowText(p))
			if failed++; failed == 5 {
				return
			}
		}
		for side := range 2 {
			k, ok := r.keyOf(p, side)
			if !ok {
				continue
			}
			if r.sides[side] && used[side][k] {
				t.Errorf("%s: row %q of side %d used twice", what, k, side)
				if failed++; failed == 5 {
					return
				}
			}
			used[side][k] = true
		}
	}
	for _, p := range eligible {
		lk, _ := r.keyOf(p, 0)
		rk, _ := r.keyOf(p, 1)
		free := (!r.sides[0] || !used[0][lk]) && (!r.sides[1] || !used[1][rk])
		if free {
			t.Errorf("%s: eligible pair %q left with both rows free", what, rowText(p))
			return
		}
	}
}
