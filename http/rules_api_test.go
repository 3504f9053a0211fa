package kallahttp

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// rulesJobBody is validJob with three rules instead of match_sql, as JSON
// with a placeholder for each rule's extra fields, so that a case can write
// what encoding a map would not (false, a number where a string goes).
func rulesJobBody(t *testing.T, extra [3]string, top string) []byte {
	t.Helper()
	job := validJob()
	delete(job, "match_sql")
	body := mustJSON(t, job)
	rules := `"rules":[` +
		`{"name":"exact","match_sql":"SELECT l.id AS left_src_id, r.id AS right_src_id FROM left_src l JOIN right_src r ON l.id = r.id"` + extra[0] + `},` +
		`{"name":"near","match_sql":"SELECT l.id AS left_src_id, r.id AS right_src_id, abs(l.amount - r.amount) AS gap FROM left_src l JOIN right_src r ON l.ref = r.ref"` + extra[1] + `},` +
		`{"name":"payer","match_sql":"SELECT l.id AS left_src_id, r.id AS right_src_id FROM left_src l JOIN right_src r ON l.customer = r.payer"` + extra[2] + `}]`
	if top != "" {
		rules += "," + top
	}
	return bytes.Replace(body, []byte("{"), []byte("{"+rules+","), 1)
}

// Every mistake in a job's rules is a 400 whose field is the exact JSON
// path of the mistake, from a submission and from a dry run alike, and
// nothing is stored or queued.
func TestRulesErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{DryRuns: DryRuns{Runner: newDryRunner(counted)}})
	none := [3]string{}
	cases := []struct {
		name  string
		body  []byte
		field string
		says  string
	}{
		{"no name", rulesJobBody(t, [3]string{"", `,"name":""`, ""}, ""), "rules[1].name", "required"},
		{"name not an identifier", rulesJobBody(t, [3]string{"", "", `,"name":"2nd pass"`}, ""), "rules[2].name", "letters"},
		{"duplicate name", rulesJobBody(t, [3]string{"", `,"name":"Exact"`, ""}, ""), "rules[1].name", "duplicate"},
		{"reserved name", rulesJobBody(t, [3]string{`,"name":"confirmed"`, "", ""}, ""), "rules[0].name", "reserved"},
		{"name not a string", rulesJobBody(t, [3]string{`,"name":7`, "", ""}, ""), "rules[0].name", "must be a string"},
		{"no match_sql", rulesJobBody(t, [3]string{"", "", `,"match_sql":" "`}, ""), "rules[2].match_sql", "required"},
		{"unknown rule field", rulesJobBody(t, [3]string{"", `,"priority":1`, ""}, ""), "rules[1].priority", "unknown field"},
		{"order_by syntax", rulesJobBody(t, [3]string{`,"exclusive":{"order_by":["gap sideways"]}`, "", ""}, ""), "rules[0].exclusive.order_by[0]", "ASC or DESC"},
		{"order_by twice", rulesJobBody(t, [3]string{"", `,"exclusive":{"order_by":["gap","GAP desc"]}`, ""}, ""), "rules[1].exclusive.order_by[1]", "twice"},
		{"order_by not a list", rulesJobBody(t, [3]string{"", `,"exclusive":{"order_by":"gap"}`, ""}, ""), "rules[1].exclusive.order_by", "must be an array"},
		{"side names no alias", rulesJobBody(t, [3]string{"", `,"exclusive":{"sides":["payments"]}`, ""}, ""), "rules[1].exclusive.sides[0]", "names no source"},
		{"side twice", rulesJobBody(t, [3]string{"", "", `,"exclusive":{"sides":["right_src","RIGHT_SRC"]}`}, ""), "rules[2].exclusive.sides[1]", "twice"},
		{"unknown ties", rulesJobBody(t, [3]string{`,"exclusive":{"ties":"coin_flip"}`, "", ""}, ""), "rules[0].exclusive.ties", "coin_flip"},
		{"unknown exclusive field", rulesJobBody(t, [3]string{`,"exclusive":{"side":["left_src"]}`, "", ""}, ""), "rules[0].exclusive.side", "unknown field"},
		{"exclusive false", rulesJobBody(t, [3]string{"", `,"exclusive":false`, ""}, ""), "rules[1].exclusive", "not a setting"},
		{"exclusive a number", rulesJobBody(t, [3]string{"", "", `,"exclusive":1`}, ""), "rules[2].exclusive", "must be an object"},
		{"top-level exclusive with rules", rulesJobBody(t, none, `"exclusive":true`), "exclusive", "each rule its own"},
		{"rules and match_sql", rulesJobBody(t, none, `"match_sql":"SELECT 1"`), "rules", "not both"},
		{"rules not a list", bytes.Replace(mustJSON(t, validJob()), []byte("{"), []byte(`{"rules":{"name":"a"},`), 1), "rules", "must be an array"},
		{"a rule not an object", bytes.Replace(mustJSON(t, validJob()), []byte("{"), []byte(`{"rules":["a"],`), 1), "rules[0]", "must be an object"},
		{"empty rules", bytes.Replace(mustJSON(t, validJob()), []byte("{"), []byte(`{"rules":[],`), 1), "rules", "empty"},
		{"match_sql exclusive side", bytes.Replace(mustJSON(t, validJob()), []byte("{"), []byte(`{"exclusive":{"sides":["nobody"]},`), 1), "exclusive.sides[0]", "names no source"},
		{"match_sql exclusive false", bytes.Replace(mustJSON(t, validJob()), []byte("{"), []byte(`{"exclusive":false,`), 1), "exclusive", "not a setting"},
	}
	for _, tc := range cases {
		var sub, dry ErrorBody
		r1 := do(t, "POST", b.url+"/api/jobs", "application/json", "", tc.body, &sub)
		r2 := do(t, "POST", b.url+"/api/jobs?dry_run=true", "application/json", "", tc.body, &dry)
		if r1.StatusCode != http.StatusBadRequest || sub.Code != "invalid_job" || sub.Field != tc.field || !strings.Contains(sub.Error, tc.says) {
			t.Errorf("%s: %d %+v; want 400 on %s mentioning %q", tc.name, r1.StatusCode, sub, tc.field, tc.says)
		}
		if r2.StatusCode != r1.StatusCode || dry != sub {
			t.Errorf("%s: the dry run answered %d %+v, the submission %d %+v", tc.name, r2.StatusCode, dry, r1.StatusCode, sub)
		}
	}
	nothingKept(t, b)

	// The same job without its mistakes is accepted: the cases fail for
	// the reason they name.
	var acc Accepted
	if resp := do(t, "POST", b.url+"/api/jobs", "application/json", "", rulesJobBody(t, [3]string{"", `,"exclusive":{"order_by":["gap DESC"],"ties":"leave_unmatched"}`, `,"exclusive":{"sides":["right_src"]}`}, ""), &acc); resp.StatusCode != 202 {
		t.Fatalf("a valid rules job: %d %+v", resp.StatusCode, acc)
	}
}
