package kalla

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// checkRules decodes the rules of the job in data one by one, before
// DecodeJob decodes the whole job, because encoding/json names a field
// inside an array without its index ("rules.name", or a bare "foo" for an
// unknown field), and the client of a job with several rules must learn
// which rule is wrong: "rules[1].name", "rules[0].exclusive". Anything
// else wrong with data is left for DecodeJob to report.
func checkRules(data []byte) error {
	var w struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if json.Unmarshal(data, &w) != nil {
		return nil
	}
	for i, m := range w.Rules {
		dec := json.NewDecoder(bytes.NewReader(m))
		dec.DisallowUnknownFields()
		var r Rule
		if err := dec.Decode(&r); err != nil {
			return prefixField(fmt.Sprintf("rules[%d]", i), describeJSONError(err))
		}
	}
	return nil
}
