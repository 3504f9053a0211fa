package kalla

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
)

// Job is one reconciliation: match the rows of two sources with MatchSQL and
// report the pairs and the rows left over on each side. Its JSON form is the
// JobRequest that the HTTP API accepts and `kallad run` reads.
type Job struct {
	// RunID identifies the run; resubmitting it must not run the job twice.
	RunID string `json:"run_id"`
	// CallbackURL is the base URL that progress, completion and error
	// callbacks are POSTed under; empty means no callbacks.
	CallbackURL string `json:"callback_url,omitempty"`
	// MatchSQL is a query over the source aliases; every row it yields is
	// one match (unless Exclusive keeps only the best). A job has MatchSQL
	// or Rules.
	MatchSQL string `json:"match_sql,omitempty"`
	// Exclusive makes MatchSQL use each row of its sides at most once.
	Exclusive *Exclusive `json:"exclusive,omitempty"`
	// Rules are applied in order, each to the rows the earlier ones left.
	Rules []Rule `json:"rules,omitempty"`
	// Confirmed is a Parquet or CSV file (local or s3://) of pairs a
	// person confirmed (such as rows of an earlier suggested.parquet):
	// matched first, as _kalla_rule "confirmed", when both rows exist.
	Confirmed string `json:"confirmed,omitempty"`
	// Explain adds to every unmatched row why it is unmatched and its
	// nearest candidate, from every rule (see explain.go).
	Explain bool `json:"explain,omitempty"`
	// Sources holds the left source first and the right source second.
	Sources []SourceSpec `json:"sources"`
	// OutputPath is the folder (local path or s3://bucket/prefix) that
	// receives the result files.
	OutputPath string `json:"output_path"`
	// PrimaryKeys names, per alias, the columns that identify a source row.
	PrimaryKeys map[string][]string `json:"primary_keys"`
	// CarryOver takes up the open items of a previous run (carryover.go).
	CarryOver *CarryOver `json:"carry_over,omitempty"`
}

// SourceSpec is one source of a job as the user gives it.
type SourceSpec struct {
	Alias   string   `json:"alias"`
	URI     string   `json:"uri"`
	Filters []Filter `json:"filters,omitempty"`
}

// Left returns the left source (sources[0]); Validate guarantees it exists.
func (j *Job) Left() SourceSpec { return j.Sources[0] }

// Right returns the right source (sources[1]); Validate guarantees it exists.
func (j *Job) Right() SourceSpec { return j.Sources[1] }

// DecodeJob reads a job from JSON, rejecting unknown fields so that a typo
// such as "primary_key" is reported instead of silently ignored.
func DecodeJob(r io.Reader) (*Job, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read job: %w", err)
	}
	if err := checkRules(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j Job
	if err := dec.Decode(&j); err != nil {
		return nil, describeJSONError(err)
	}
	if dec.More() {
		return nil, Invalid("", "unexpected data after the job object")
	}
	return &j, nil
}

// describeJSONError turns encoding/json errors into validation errors that
// name the field.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return Invalid(typeErr.Field, "must be %s, got %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return Invalid("", "malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case err == io.EOF:
		return Invalid("", "empty job: expected a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(field, "unknown field")
	default:
		if IsValidation(err) {
			return err
		}
		return Invalid("", "malformed JSON: %v", err)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	default:
		return "a " + kind
	}
}

// Validate checks everything about the job that can be known without
// touching its sources. requireRunID is true for the HTTP API, where the
// client owns the run id.
func (j *Job) Validate(requireRunID bool) error {
	if j.RunID == "" {
		if requireRunID {
			return Invalid("run_id", "is required")
		}
	} else if _, err := uuid.Parse(j.RunID); err != nil {
		return Invalid("run_id", "%q is not a UUID", j.RunID)
	}
	if err := j.validateRules(); err != nil {
		return err
	}
	if j.OutputPath == "" {
		return Invalid("output_path", "is required: the folder that receives matched.parquet, unmatched_*.parquet and summary.json")
	}
	if j.CallbackURL != "" && !strings.HasPrefix(j.CallbackURL, "http://") && !strings.HasPrefix(j.CallbackURL, "https://") {
		return Invalid("callback_url", "%q must be an http:// or https:// URL", j.CallbackURL)
	}
	if len(j.Sources) != 2 {
		return Invalid("sources", "needs exactly 2 sources (left, right), got %d", len(j.Sources))
	}
	seen := map[string]bool{}
	for i, s := range j.Sources {
		field := fmt.Sprintf("sources[%d]", i)
		if s.Alias == "" {
			return Invalid(field+".alias", "is required")
		}
		if !isIdentifier(s.Alias) {
			return Invalid(field+".alias", "%q must be a SQL identifier (letters, digits, underscore; not starting with a digit)", s.Alias)
		}
		if seen[strings.ToLower(s.Alias)] {
			return Invalid(field+".alias", "duplicate alias %q", s.Alias)
		}
		seen[strings.ToLower(s.Alias)] = true
		if s.URI == "" {
			return Invalid(field+".uri", "is required")
		}
		for k, f := range s.Filters {
			if err := f.Validate(); err != nil {
				return prefixField(fmt.Sprintf("%s.filters[%d]", field, k), err)
			}
		}
	}
	if err := j.validateRuleList(); err != nil {
		return err
	}
	if j.CarryOver != nil {
		if err := j.CarryOver.validate(); err != nil {
			return err
		}
	}
	for alias := range j.PrimaryKeys {
		if !seen[strings.ToLower(alias)] {
			return Invalid("primary_keys."+alias, "names no source: the aliases are %q and %q", j.Sources[0].Alias, j.Sources[1].Alias)
		}
	}
	for _, s := range j.Sources {
		keys := j.KeysOf(s.Alias)
		if len(keys) == 0 {
			return Invalid("primary_keys."+s.Alias, "is required: the columns that identify a row of %q", s.Alias)
		}
		dup := map[string]bool{}
		for _, k := range keys {
			if k == "" {
				return Invalid("primary_keys."+s.Alias, "contains an empty column name")
			}
			if dup[k] {
				return Invalid("primary_keys."+s.Alias, "names column %q twice", k)
			}
			dup[k] = true
		}
	}
	return nil
}

// KeysOf returns the primary-key columns of alias (matched case-insensitively,
// as SQL identifiers are).
func (j *Job) KeysOf(alias string) []string {
	if k, ok := j.PrimaryKeys[alias]; ok {
		return k
	}
	for a, k := range j.PrimaryKeys {
		if strings.EqualFold(a, alias) {
			return k
		}
	}
	return nil
}

func prefixField(prefix string, err error) error {
	if v, ok := err.(*ValidationError); ok {
		field := prefix
		if v.Field != "" {
			field += "." + v.Field
		}
		return &ValidationError{Field: field, Message: v.Message}
	}
	return err
}

func isIdentifier(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// MarshalIndent is a convenience for printing payloads the way the CLI does.
func MarshalIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
