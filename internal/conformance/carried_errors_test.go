package conformance

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
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
		// values, when set, selects the carried values the error may
		// name: those today's type cannot hold exactly.
		values string
	}
	noSummary := c.Without(t, from, kalla.SummaryFile)
	missing := c.Out(t, "never-written")
	cases := []bad{
		{"missing", missing, today, []string{missing}, ""},
		{"no_summary", noSummary, today, []string{noSummary, kalla.SummaryFile}, ""},
		// '007' and 'abc' are no BIGINT ('7' is); a DATE is no BOOLEAN.
		{"type_code", from, c.Put(t, "today_code", "SELECT id + 100 AS id, id::BIGINT AS code, * EXCLUDE (id, code) FROM ("+typedData+")"),
			[]string{`"code"`}, "SELECT code FROM (" + typedData + ") WHERE code IS DISTINCT FROM TRY_CAST(code AS BIGINT)::VARCHAR"},
		{"type_due", from, c.Put(t, "today_due", "SELECT id + 100 AS id, id % 2 = 0 AS due, * EXCLUDE (id, due) FROM ("+typedData+")"),
			[]string{`"due"`}, "SELECT due::VARCHAR FROM (" + typedData + ") WHERE due IS NOT NULL"},
	}
	if c.Denied != nil {
		uri, names := c.Denied(t, from)
		cases = append(cases, bad{"denied", uri, today, names, ""})
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
			if b.values != "" {
				checkNamesValue(t, err, ducktest.Query(t, b.values))
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

// carriedValue finds the value a carry-over type error names.
var carriedValue = regexp.MustCompile(`carried value ("(?:[^"\\]|\\.)*")`)

// checkNamesValue fails t unless err names, as the carried value at fault,
// one of values.
func checkNamesValue(t *testing.T, err error, values []string) {
	t.Helper()
	m := carriedValue.FindStringSubmatch(err.Error())
	if m == nil {
		t.Errorf("error names no carried value: %v", err)
		return
	}
	v, uerr := strconv.Unquote(m[1])
	if uerr != nil || !slices.Contains(values, v) {
		t.Errorf("error names carried value %s, want one of %q", m[1], values)
	}
}
