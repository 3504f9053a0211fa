package kalla_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// Errors inside a rule name the rule by its index, as Validate's do; before
// decodeRules, encoding/json said "foo" or "rules.name" and the client of a
// job with several rules could not tell which one was wrong.
func TestDecodeJobNamesTheRule(t *testing.T) {
	t.Parallel()
	two := func(second string) string {
		return `{"rules":[{"name":"a","match_sql":"x"},` + second + `]}`
	}
	cases := []struct {
		name, body, field, says string
	}{
		{"unknown field", two(`{"name":"b","match_sql":"y","foo":1}`), "rules[1].foo", "unknown field"},
		{"wrong type", two(`{"name":5,"match_sql":"y"}`), "rules[1].name", "must be a string"},
		{"exclusive false", two(`{"name":"b","match_sql":"y","exclusive":false}`), "rules[1].exclusive", "not a setting"},
		{"exclusive number", two(`{"name":"b","match_sql":"y","exclusive":7}`), "rules[1].exclusive", "must be an object"},
		{"unknown exclusive field", two(`{"name":"b","match_sql":"y","exclusive":{"bar":1}}`), "rules[1].exclusive.bar", "unknown field"},
		{"order_by not a list", two(`{"name":"b","match_sql":"y","exclusive":{"order_by":"x"}}`), "rules[1].exclusive.order_by", "must be an array"},
		{"rules not a list", `{"rules":{"name":"a"}}`, "rules", "must be an array"},
		{"rule not an object", `{"rules":["a"]}`, "rules[0]", "must be an object"},
		{"top-level exclusive false", `{"match_sql":"x","exclusive":false}`, "exclusive", "not a setting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kalla.DecodeJob(strings.NewReader(tc.body))
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

// An empty list stays empty (Validate says so) and a missing one stays nil.
func TestDecodeJobKeepsEmptyRules(t *testing.T) {
	t.Parallel()
	j, err := kalla.DecodeJob(strings.NewReader(`{"rules":[]}`))
	if err != nil || j.Rules == nil || len(j.Rules) != 0 {
		t.Fatalf("rules [] decoded as %#v, %v", j, err)
	}
	j, err = kalla.DecodeJob(strings.NewReader(`{"match_sql":"x"}`))
	if err != nil || j.Rules != nil || j.MatchSQL != "x" {
		t.Fatalf("no rules decoded as %#v, %v", j, err)
	}
	j, err = kalla.DecodeJob(strings.NewReader(`{"rules":[{"name":"a","match_sql":"x","exclusive":true}]}`))
	if err != nil || len(j.Rules) != 1 || j.Rules[0].Name != "a" || j.Rules[0].Exclusive == nil {
		t.Fatalf("one rule decoded as %#v, %v", j, err)
	}
}
