package kalla_test

import (
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// A carry_over's fields are checked at decode time, each error naming its
// field; a chain's first run has no from.
func TestCarryOverValidation(t *testing.T) {
	base := `{"match_sql": "SELECT l.id AS l_id, r.id AS r_id FROM l JOIN r ON l.id = r.id",
		"sources": [{"alias": "l", "uri": "a.csv"}, {"alias": "r", "uri": "b.csv"}],
		"output_path": "out", "primary_keys": {"l": ["id"], "r": ["id"]}, "carry_over": `
	for _, tc := range []struct{ carry, field, says string }{
		{`{"from": "  "}`, "carry_over.from", "blank"},
		{`{"from": "prev", "max_age_days": -3}`, "carry_over.max_age_days", "0 or more"},
		{`{"from": "prev", "as_of": "03/01/2026"}`, "carry_over.as_of", "YYYY-MM-DD"},
		{`{"from": "prev", "age_from": "_kalla_first_seen_at"}`, "carry_over.age_from", "lineage column"},
		{`{"from": "prev", "max_age": 3}`, "max_age", "unknown field"},
		{`{}`, "", ""},
		{`{"from": "prev", "as_of": "2026-03-01", "max_age_days": 0, "age_from": "booked"}`, "", ""},
	} {
		job, err := kalla.DecodeJob(strings.NewReader(base + tc.carry + "}"))
		if err == nil {
			err = job.Validate(false)
		}
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.carry, err)
			}
			continue
		}
		v, ok := err.(*kalla.ValidationError)
		if !ok || v.Field != tc.field || !strings.Contains(v.Message, tc.says) {
			t.Errorf("%s: %v, want %s saying %q", tc.carry, err, tc.field, tc.says)
		}
	}
}
