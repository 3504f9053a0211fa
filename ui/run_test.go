package ui

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The parts of a result the run page does not know (issue 13's per-rule
// counts, issue 14's reasons and ageing) are shown as tables in the
// order of the JSON: an array of objects by its keys, an object as name
// and value, a scalar as itself.
func TestResultTables(t *testing.T) {
	raw := json.RawMessage(`{"run_id": "r", "matched_count": 3, "output_paths": {"matched": "m"},
		"rules": [{"name": "exact", "left_in": 10, "matched": 3, "ties": 0}, {"name": "fuzzy", "left_in": 7, "matched": 0, "elapsed_ms": 12}],
		"reasons": {"no_candidate": 4, "amount_mismatch": 1},
		"carried_over": 2}`)
	got := resultTables(raw)
	want := []table{
		{Title: "rules", Columns: []string{"name", "left_in", "matched", "ties", "elapsed_ms"}, Rows: [][]string{{"exact", "10", "3", "0", ""}, {"fuzzy", "7", "0", "", "12"}}},
		{Title: "reasons", Columns: []string{"name", "value"}, Rows: [][]string{{"no_candidate", "4"}, {"amount_mismatch", "1"}}},
		{Title: "carried_over", Columns: []string{"value"}, Rows: [][]string{{"2"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tables:\n got %+v\nwant %+v", got, want)
	}
}

// An API error lands next to the input that holds its field.
func TestSubmitErrorInputs(t *testing.T) {
	f := &submitForm{LeftAlias: "inv", RightAlias: "pay"}
	for field, want := range map[string]string{
		"run_id": "run_id", "match_sql": "match_sql", "sources[0].uri": "left_uri", "sources[1].alias": "right_alias",
		"sources[1].filters[0].op": "right_filters", "primary_keys.PAY": "right_keys", "primary_keys.inv": "left_keys",
		"sources": "", "primary_keys.other": "",
	} {
		if got := f.inputOf(field); got != want {
			t.Errorf("field %s goes to input %q, want %q", field, got, want)
		}
	}
	f.JSON = `{"run_id": 1}`
	if got := f.inputOf("run_id"); got != "job_json" {
		t.Errorf("with a JSON job, an error goes to %q, want job_json", got)
	}
}

// TestPastedJobGetsTheFormsRunID: a job file written for kallad run (no
// run_id, as examples/job.json) can be pasted as it is; a run_id it has is
// kept.
func TestPastedJobGetsTheFormsRunID(t *testing.T) {
	const id = "6b1f2c7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
	for _, tc := range []struct{ json, want string }{
		{`{"match_sql": "SELECT 1"}`, id},
		{`{"run_id": "", "match_sql": "SELECT 1"}`, id},
		{`{"run_id": "0f0e0d0c-0b0a-4908-8706-050403020100"}`, "0f0e0d0c-0b0a-4908-8706-050403020100"},
	} {
		f := submitForm{RunID: id, JSON: tc.json}
		body, _, msg := f.job()
		var got struct {
			RunID string `json:"run_id"`
		}
		if msg != "" || json.Unmarshal(body, &got) != nil || got.RunID != tc.want {
			t.Errorf("%s: body %s (%s), want run_id %s", tc.json, body, msg, tc.want)
		}
	}
}

// Results of issue 14 nest per side: reasons and ageing become a row per
// side with a column per reason or bucket; carry_over a row per count and
// side.
func TestResultTablesPerSide(t *testing.T) {
	raw := json.RawMessage(`{"run_id": "r",
		"reasons": {"left": {"no_candidate": 2, "tie": 1}, "right": {"taken": 3}},
		"carry_over": {"from_run_id": "x", "carried": {"left": 3, "right": 1}}}`)
	got := resultTables(raw)
	want := []table{
		{Title: "reasons", Columns: []string{"name", "no_candidate", "tie", "taken"}, Rows: [][]string{{"left", "2", "1", ""}, {"right", "", "", "3"}}},
		{Title: "carry_over", Columns: []string{"name", "value"}, Rows: [][]string{{"from_run_id", "x"}, {"carried.left", "3"}, {"carried.right", "1"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tables:\n got %+v\nwant %+v", got, want)
	}
}
