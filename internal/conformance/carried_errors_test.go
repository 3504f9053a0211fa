package conformance

import (
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// testCarriedErrors: a carry_over.from that is not a complete result
// (missing, without summary.json), one the runner may not read, and
// carried columns today's source cannot hold each fail day 2 with a
// *ValidationError on carry_over.from that names the folder or the column,
// and no secret is in the error or in anything the runner logged.
func testCarriedErrors(t *testing.T, c carriedKind, from, today string) {
	type bad struct {
		name, from, today string
		names             []string
	}
	noSummary := c.Without(t, from, kalla.SummaryFile)
	missing := c.Out(t, "never-written")
	cases := []bad{
		{"missing", missing, today, []string{missing}},
		{"no_summary", noSummary, today, []string{noSummary, kalla.SummaryFile}},
		// '007' and 'abc' are no BIGINT; a DATE is no BOOLEAN.
		{"type_code", from, c.Put(t, "today_code", "SELECT id + 100 AS id, id::BIGINT AS code, * EXCLUDE (id, code) FROM ("+typedData+")"), []string{`"code"`}},
		{"type_due", from, c.Put(t, "today_due", "SELECT id + 100 AS id, id % 2 = 0 AS due, * EXCLUDE (id, due) FROM ("+typedData+")"), []string{`"due"`}},
	}
	if c.Denied != nil {
		uri, names := c.Denied(t, from)
		cases = append(cases, bad{"denied", uri, today, names})
	}
	for _, b := range cases {
		t.Run(b.name, func(t *testing.T) {
			c.known(t)
			_, err := c.day2(t, b.from, b.today)
			if err == nil {
				t.Fatalf("carry_over.from %s: no error", b.from)
			}
			t.Logf("stage %s: %v", kalla.ErrorStage(err), err)
			checkNoSecret(t, c.Kind, err)
			for _, n := range b.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error does not name %s: %v", n, err)
				}
			}
			var v *kalla.ValidationError
			if !asValidation(err, &v) {
				t.Errorf("not a user error (stage %s): %v", kalla.ErrorStage(err), err)
			} else if v.Field != "carry_over.from" {
				t.Errorf("error on field %q, want carry_over.from: %v", v.Field, err)
			}
		})
	}
	checkNoSecretIn(t, c.Kind, "runner's log", c.logs.String())
}
