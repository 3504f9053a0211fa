package kalla_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// rulesJob is a valid job with rules, as JSON, with body spliced in as its
// first fields.
func rulesJob(body string) string {
	return `{` + body + `,
 "sources": [{"alias": "left_src", "uri": "l.csv"}, {"alias": "right_src", "uri": "r.csv"}],
 "primary_keys": {"left_src": ["id"], "right_src": ["id"]}, "output_path": "out"}`
}

const twoRules = `"rules": [{"name": "exact", "match_sql": "SELECT 1"}, {"name": "near", "match_sql": "SELECT 2", "exclusive": true}]`

// Every mistake in rules or exclusive, whether found while decoding or
// validating, is a *ValidationError naming the field and the value.
func TestRulesValidationNamesTheField(t *testing.T) {
	t.Parallel()
	rule := func(fields string) string {
		return `"rules": [{"name": "r1", "match_sql": "SELECT 1"}, {` + fields + `}]`
	}
	cases := []struct {
		name, body, field, says string
	}{
		{"duplicate name", rule(`"name": "R1", "match_sql": "SELECT 1"`), "rules[1].name", `duplicate rule name "R1" (rules[0] has it)`},
		{"empty name", rule(`"match_sql": "SELECT 1"`), "rules[1].name", "is required"},
		{"name not an identifier", rule(`"name": "near-amount", "match_sql": "SELECT 1"`), "rules[1].name", `"near-amount"`},
		{"name starts with a digit", rule(`"name": "2nd", "match_sql": "SELECT 1"`), "rules[1].name", `"2nd"`},
		{"reserved name", rule(`"name": "Confirmed", "match_sql": "SELECT 1"`), "rules[1].name", "reserved"},
		{"empty match_sql", rule(`"name": "r2", "match_sql": " "`), "rules[1].match_sql", "is required"},
		{"match_sql and rules", `"match_sql": "SELECT 1", ` + twoRules, "rules", "not both"},
		{"empty rules", `"rules": []`, "rules", "is empty"},
		{"neither", `"run_id": ""`, "match_sql", "or give rules"},
		{"exclusive beside rules", `"exclusive": true, ` + twoRules, "exclusive", "give each rule its own"},
		{"side naming no alias", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"sides": ["bank"]}`), "rules[1].exclusive.sides[0]", `"bank" names no source`},
		{"side twice", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"sides": ["left_src", "LEFT_SRC"]}`), "rules[1].exclusive.sides[1]", "twice"},
		{"ties value", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"ties": "random"}`), "rules[1].exclusive.ties", `"random"`},
		{"order_by syntax", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"order_by": ["amount_diff descending"]}`), "rules[1].exclusive.order_by[0]", `"amount_diff descending"`},
		{"order_by twice", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"order_by": ["gap", "GAP desc"]}`), "rules[1].exclusive.order_by[1]", "twice"},
		{"top-level ties", `"match_sql": "SELECT 1", "exclusive": {"ties": "first"}`, "exclusive.ties", `"first"`},
		{"top-level side", `"match_sql": "SELECT 1", "exclusive": {"sides": ["x"]}`, "exclusive.sides[0]", `"x"`},
		{"exclusive false", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": false`), "rules[1].exclusive", "leave the field out"},
		{"unknown field in exclusive", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusive": {"side": ["left_src"]}`), "rules[1].exclusive.side", "unknown field"},
		{"top-level unknown field in exclusive", `"match_sql": "SELECT 1", "exclusive": {"orderby": ["x"]}`, "exclusive.orderby", "unknown field"},
		{"unknown field in a rule", rule(`"name": "r2", "match_sql": "SELECT 1", "exclusve": true`), "rules[1].exclusve", "unknown field"},
		{"wrong type in a rule", rule(`"name": 2, "match_sql": "SELECT 1"`), "rules[1].name", "must be a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job, err := kalla.DecodeJob(strings.NewReader(rulesJob(tc.body)))
			if err == nil {
				err = job.Validate(false)
			}
			var v *kalla.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("want a validation error, got %v", err)
			}
			if v.Field != tc.field || !strings.Contains(v.Message, tc.says) {
				t.Errorf("got %q / %q, want field %q mentioning %q", v.Field, v.Message, tc.field, tc.says)
			}
		})
	}
}

// `exclusive: true` is both sides, ordered by key alone, ties to the lowest
// key; sides are matched to aliases case-insensitively.
func TestExclusiveShorthandAndSides(t *testing.T) {
	t.Parallel()
	job, err := kalla.DecodeJob(strings.NewReader(rulesJob(`"rules": [{"name": "a", "match_sql": "SELECT 1", "exclusive": true},
 {"name": "b", "match_sql": "SELECT 1", "exclusive": {"sides": ["RIGHT_SRC"], "order_by": ["gap DESC", "diff"], "ties": "leave_unmatched"}}]`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Validate(false); err != nil {
		t.Fatal(err)
	}
	a, err := job.ExclusiveSpec(0)
	if err != nil || a == nil || a.Sides != [2]bool{true, true} || len(a.OrderBy) != 0 || a.LeaveTies {
		t.Errorf("exclusive true: %+v, %v", a, err)
	}
	b, err := job.ExclusiveSpec(1)
	want := []kalla.OrderKey{{Column: "gap", Desc: true}, {Column: "diff"}}
	if err != nil || b == nil || b.Sides != [2]bool{false, true} || !b.LeaveTies || len(b.OrderBy) != 2 || b.OrderBy[0] != want[0] || b.OrderBy[1] != want[1] {
		t.Errorf("exclusive object: %+v, %v", b, err)
	}
}

// order_by entries name a column, in double quotes when it holds spaces,
// optionally followed by ASC or DESC.
func TestParseOrderBy(t *testing.T) {
	t.Parallel()
	got, err := kalla.ParseOrderBy([]string{"gap", " diff  DESC ", `"Diff Amt" desc`, `"say ""hi"""`, `"score" ASC`})
	want := []kalla.OrderKey{{Column: "gap"}, {Column: "diff", Desc: true}, {Column: "Diff Amt", Desc: true}, {Column: `say "hi"`}, {Column: "score"}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "  ", `"unclosed`, `""`, "a b", "a DESC b", `"a" b`} {
		if _, err := kalla.ParseOrderBy([]string{bad}); err == nil || !strings.Contains(err.Error(), "order_by[0]") {
			t.Errorf("%q: got %v, want an error naming order_by[0]", bad, err)
		}
	}
}
