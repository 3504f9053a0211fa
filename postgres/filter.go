package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
)

// filterSet is the filters of a scan turned into SQL. COPY takes no bind
// parameters, so each operand is first stored, as a bind parameter, in a
// transaction-local setting (set_config('kalla.f0', $1, true)); the WHERE
// clause reads it back with current_setting and casts it to the column's
// type. An operand is thus never part of the SQL text. Each read sits in a
// scalar subquery, which Postgres evaluates once per scan (an InitPlan)
// rather than once per row.
type filterSet struct {
	where  []string // conditions, ANDed
	values []string // values[k] goes to setting kalla.f<k>
	casts  []string // the type values[k] must parse as ("" for none)
	owner  []int    // owner[k] is the index of the filter values[k] came from
}

// settingName is the custom setting holding operand k.
func settingName(k int) string { return fmt.Sprintf("kalla.f%d", k) }

// buildFilters checks filters against the relation's columns and translates
// them. Errors are *kalla.ValidationError naming filters[i].
func buildFilters(rel *relation, filters []kalla.Filter) (*filterSet, error) {
	fs := &filterSet{}
	for i, f := range filters {
		field := fmt.Sprintf("filters[%d]", i)
		if strings.TrimSpace(f.Column) == "" {
			return nil, kalla.Invalid(field+".column", "is required")
		}
		ops, err := f.Operands()
		if err != nil {
			return nil, prefixField(field, err)
		}
		ci := rel.findColumn(f.Column)
		if ci < 0 {
			return nil, kalla.Invalid(field+".column", "column %q is not in table %s (columns: %s)", f.Column, rel.display, rel.columnNames())
		}
		c := rel.cols[ci]
		col := pgx.Identifier{c.name}.Sanitize()
		if c.castType == "text" {
			// Read as text (or json, which has no = operator): compare
			// the text the engine sees.
			col += "::text"
		}
		param := func(text, cast string) string {
			k := len(fs.values)
			fs.values = append(fs.values, text)
			fs.casts = append(fs.casts, cast)
			fs.owner = append(fs.owner, i)
			if cast == "" {
				return fmt.Sprintf("(SELECT current_setting('%s'))", settingName(k))
			}
			return fmt.Sprintf("(SELECT current_setting('%s')::%s)", settingName(k), cast)
		}
		switch f.Op {
		case kalla.OpEq, kalla.OpNeq, kalla.OpGt, kalla.OpGte, kalla.OpLt, kalla.OpLte:
			fs.where = append(fs.where, col+" "+f.Op.SQL()+" "+param(ops[0].Text, c.castType))
		case kalla.OpBetween:
			lo := param(ops[0].Text, c.castType)
			hi := param(ops[1].Text, c.castType)
			fs.where = append(fs.where, col+" BETWEEN "+lo+" AND "+hi)
		case kalla.OpIn:
			texts := make([]string, len(ops))
			for j, o := range ops {
				texts[j] = o.Text
			}
			// The outer cast (a no-op) makes ANY take an array expression
			// rather than the rows of a subquery.
			arr := c.castType + "[]"
			fs.where = append(fs.where, col+" = ANY("+param(arrayLiteral(texts), arr)+"::"+arr+")")
		case kalla.OpLike:
			if !c.stringy {
				col = pgx.Identifier{c.name}.Sanitize() + "::text"
			}
			fs.where = append(fs.where, col+" LIKE "+param(ops[0].Text, ""))
		default:
			return nil, kalla.Invalid(field+".op", "unknown op %q: use one of eq neq gt gte lt lte between in like", f.Op)
		}
	}
	return fs, nil
}

// arrayLiteral writes texts as a Postgres array literal, every element
// quoted so that NULL, braces and commas are plain text.
func arrayLiteral(texts []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, t := range texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range t {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// setSQL is the statement that stores the operands (and, cast, checks that
// each parses as its column's type). Settings are local to the transaction.
func (fs *filterSet) setSQL(from, to int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for k := from; k < to; k++ {
		if k > from {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "set_config('%s', $%d, true)", settingName(k), k-from+1)
		if fs.casts[k] != "" {
			b.WriteString("::" + fs.casts[k])
		}
	}
	return b.String()
}

// args returns values[from:to] as query arguments.
func (fs *filterSet) args(from, to int) []any {
	out := make([]any, 0, to-from)
	for _, v := range fs.values[from:to] {
		out = append(out, v)
	}
	return out
}

// prefixField re-roots a validation error's field under prefix.
func prefixField(prefix string, err error) error {
	var v *kalla.ValidationError
	if !errors.As(err, &v) {
		return err
	}
	field := prefix
	if v.Field != "" {
		field += "." + v.Field
	}
	return &kalla.ValidationError{Field: field, Message: v.Message}
}
