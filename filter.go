package kalla

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// FilterOp is a comparison a filter applies to a source column.
type FilterOp string

// The filter operators. between takes [low, high] (inclusive), in takes a
// non-empty array, like takes a SQL LIKE pattern; the rest take one value.
const (
	OpEq      FilterOp = "eq"
	OpNeq     FilterOp = "neq"
	OpGt      FilterOp = "gt"
	OpGte     FilterOp = "gte"
	OpLt      FilterOp = "lt"
	OpLte     FilterOp = "lte"
	OpBetween FilterOp = "between"
	OpIn      FilterOp = "in"
	OpLike    FilterOp = "like"
)

// SQL returns the comparison operator for the single-value ops.
func (op FilterOp) SQL() string {
	switch op {
	case OpEq:
		return "="
	case OpNeq:
		return "<>"
	case OpGt:
		return ">"
	case OpGte:
		return ">="
	case OpLt:
		return "<"
	case OpLte:
		return "<="
	case OpLike:
		return "LIKE"
	}
	return ""
}

// Filter restricts a source to the rows where Column Op Value holds. It is
// applied where the rows are read (pushed into Postgres as parameters), so a
// filtered-out row is never transferred.
type Filter struct {
	Column string          `json:"column"`
	Op     FilterOp        `json:"op"`
	Value  json.RawMessage `json:"value"`
}

// FilterValue is one scalar operand of a filter: its text, and whether it was
// a JSON number or boolean (written bare in SQL) rather than a string.
type FilterValue struct {
	Text string
	Kind ValueKind
}

// ValueKind says how a filter operand was written in JSON.
type ValueKind int

// The kinds of filter operand.
const (
	KindString ValueKind = iota
	KindNumber
	KindBool
)

var numberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// Operands returns the filter's operands: one for the comparison ops, two for
// between, one or more for in. It is where a malformed filter is detected.
func (f Filter) Operands() ([]FilterValue, error) {
	raw := bytes.TrimSpace(f.Value)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, Invalid("value", "is required (null never compares equal in SQL)")
	}
	switch f.Op {
	case OpBetween, OpIn:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, Invalid("value", "op %q needs a JSON array, got %s", f.Op, clip(raw))
		}
		if f.Op == OpBetween && len(items) != 2 {
			return nil, Invalid("value", "op \"between\" needs [low, high], got %d values", len(items))
		}
		if len(items) == 0 {
			return nil, Invalid("value", "op \"in\" needs at least one value")
		}
		out := make([]FilterValue, len(items))
		for i, it := range items {
			v, err := scalar(it)
			if err != nil {
				return nil, Invalid(fmt.Sprintf("value[%d]", i), "%v", err)
			}
			out[i] = v
		}
		return out, nil
	case OpEq, OpNeq, OpGt, OpGte, OpLt, OpLte, OpLike:
		v, err := scalar(raw)
		if err != nil {
			return nil, Invalid("value", "%v", err)
		}
		if f.Op == OpLike && v.Kind != KindString {
			return nil, Invalid("value", "op \"like\" needs a string pattern, got %s", clip(raw))
		}
		return []FilterValue{v}, nil
	case "":
		return nil, Invalid("op", "is required: one of eq neq gt gte lt lte between in like")
	default:
		return nil, Invalid("op", "unknown op %q: use one of eq neq gt gte lt lte between in like", f.Op)
	}
}

// Validate reports a malformed filter, naming the field at fault.
func (f Filter) Validate() error {
	if strings.TrimSpace(f.Column) == "" {
		return Invalid("column", "is required")
	}
	_, err := f.Operands()
	return err
}

func scalar(raw json.RawMessage) (FilterValue, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return FilterValue{}, fmt.Errorf("null is not a comparable value")
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return FilterValue{}, fmt.Errorf("malformed string %s", clip(raw))
		}
		return FilterValue{Text: s, Kind: KindString}, nil
	case string(raw) == "true" || string(raw) == "false":
		return FilterValue{Text: string(raw), Kind: KindBool}, nil
	case numberRe.Match(raw):
		return FilterValue{Text: string(raw), Kind: KindNumber}, nil
	default:
		return FilterValue{}, fmt.Errorf("must be a string, number or boolean, got %s", clip(raw))
	}
}

func clip(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}
