package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
)

// relation is a resolved table or view and how to read each of its columns.
type relation struct {
	oid     uint32
	kind    byte   // pg_class.relkind: r table, p partitioned, m matview, v view, f foreign
	ident   string // "schema"."name", quoted for SQL
	display string // schema.name, for messages
	major   int    // server major version
	cols    []column
}

// column is a source column: its Kalla type, how it is selected and
// decoded, and how filters compare with it.
type column struct {
	name string
	typ  kalla.Type
	dec  decoder
	// text is true when the column is selected as "col"::text because no
	// Kalla type holds its values (interval, arrays, enums, inet, money,
	// too-wide numerics...).
	text bool
	// castType is the type filter operands are cast to (the column's base
	// type without modifier, as format_type spells it), or "text" for a text
	// column. Without the modifier, 1.005 is not rounded to 1.01 before it is
	// compared with a numeric(12,2).
	castType string
	// stringy columns take LIKE as they are; others are cast to text first.
	stringy bool
	// declaredScale is set for a numeric whose DECIMAL type is its
	// declared numeric(p,s): its values never hold more digits.
	declaredScale bool
}

// selectExpr is how the column appears in the COPY query.
func (c column) selectExpr() string {
	if c.text {
		return pgx.Identifier{c.name}.Sanitize() + "::text"
	}
	return pgx.Identifier{c.name}.Sanitize()
}

// Built-in type OIDs (pg_type.dat); they are fixed across versions.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// describe resolves the table and maps its columns. A numeric column whose
// DECIMAL width comes from the data takes its type from declared instead
// when declared names it: the type a split source decided once for all its
// splits.
func (s *Source) describe(ctx context.Context, conn *pgx.Conn, declared []kalla.Column) (*relation, error) {
	exact, folded := s.table.candidates()
	rel := &relation{}
	var schema, name, kind string
	err := conn.QueryRow(ctx, `
		SELECT c.oid, c.relkind::text, n.nspname, c.relname, current_setting('server_version_num')::int / 10000
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = coalesce(to_regclass($1), to_regclass($2))`, exact, folded).
		Scan(&rel.oid, &kind, &schema, &name, &rel.major)
	if err == pgx.ErrNoRows {
		return nil, kalla.Invalid("uri", "table %q not found in database %q at %s: check ?table=schema.name (the role may also lack USAGE on the schema)",
			s.table.String(), s.cfg.Database, s.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %q: %w", s.table.String(), err)
	}
	rel.kind = kind[0]
	rel.ident = pgx.Identifier{schema, name}.Sanitize()
	rel.display = schema + "." + name

	rows, err := conn.Query(ctx, `
		SELECT a.attname, coalesce(bt.oid, t.oid), coalesce(bt.typname, t.typname)::text,
		       coalesce(bt.typtype, t.typtype)::text,
		       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
		       format_type(coalesce(bt.oid, t.oid), NULL)
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, rel.oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", rel.display, err)
	}
	type pgColumn struct {
		name, typname, typtype, format string
		oid                            uint32
		typmod                         int32
	}
	var pgCols []pgColumn
	for rows.Next() {
		var c pgColumn
		if err := rows.Scan(&c.name, &c.oid, &c.typname, &c.typtype, &c.typmod, &c.format); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of %s: %w", rel.display, err)
		}
		pgCols = append(pgCols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", rel.display, err)
	}
	if len(pgCols) == 0 {
		return nil, kalla.Invalid("uri", "table %s has no columns", rel.display)
	}

	var infer []int // numeric columns whose DECIMAL width is read from the data
	var typmods []int32
	rel.cols = make([]column, len(pgCols))
	for i, pc := range pgCols {
		c := mapType(pc.name, pc.oid, pc.typname, pc.typtype, pc.format)
		if pc.oid == oidNumeric {
			if p, sc, ok := numericTypmod(pc.typmod); ok && p <= kalla.MaxDecimalPrecision {
				c.typ = kalla.Type{Kind: kalla.TypeDecimal, Precision: p, Scale: sc}
				c.declaredScale = true
			} else if d := findDeclared(declared, pc.name); d != nil {
				c.typ = d.Type
				if d.Type.Kind == kalla.TypeVarchar {
					c.asText()
				}
			} else {
				infer, typmods = append(infer, i), append(typmods, pc.typmod)
			}
		}
		rel.cols[i] = c
	}
	if len(infer) > 0 {
		if err := s.inferDecimals(ctx, conn, rel, infer, typmods); err != nil {
			return nil, err
		}
	}
	return rel, nil
}

// mapType maps a Postgres type to a Kalla type and a decoder; a type no
// Kalla type holds is read as text.
func mapType(name string, oid uint32, typname, typtype, format string) column {
	c := column{name: name, castType: format}
	set := func(kind kalla.TypeKind, dec decoder) {
		c.typ, c.dec = kalla.Type{Kind: kind}, dec
	}
	switch oid {
	case oidBool:
		set(kalla.TypeBoolean, decBool)
	case oidInt2:
		set(kalla.TypeSmallint, decInt2)
	case oidInt4:
		set(kalla.TypeInteger, decInt4)
	case oidInt8:
		set(kalla.TypeBigint, decInt8)
	case oidFloat4:
		set(kalla.TypeReal, decFloat4)
	case oidFloat8:
		set(kalla.TypeDouble, decFloat8)
	case oidNumeric:
		c.dec = decNumeric // its Type is set by the caller
	case oidDate:
		set(kalla.TypeDate, decDate)
	case oidTime:
		set(kalla.TypeTime, decTime)
	case oidTimestamp:
		set(kalla.TypeTimestamp, decTimestamp)
	case oidTimestampTZ:
		set(kalla.TypeTimestampTZ, decTimestamp)
	case oidUUID:
		set(kalla.TypeUUID, decUUID)
	case oidBytea:
		set(kalla.TypeBlob, decBytes)
	case oidText, oidVarchar, oidName:
		set(kalla.TypeVarchar, decText)
		c.stringy = true
	case oidBpchar:
		set(kalla.TypeVarchar, decText)
		c.stringy = true
		// format_type spells it "character", which means char(1) in a
		// cast: 'abc'::character is 'a'.
		c.castType = "bpchar"
	case oidJSON:
		// json has no equality operator: filters compare its text.
		set(kalla.TypeJSON, decText)
		c.castType = "text"
	case oidJSONB:
		set(kalla.TypeJSON, decJSONB)
		c.castType = "text"
	default:
		if typname == "citext" && typtype == "b" {
			// The citext extension sends its values as text does.
			set(kalla.TypeVarchar, decText)
			c.stringy = true
			break
		}
		c.asText()
	}
	return c
}

// asText makes the column read, and compare, as text.
func (c *column) asText() {
	c.typ, c.dec, c.text, c.castType, c.stringy = kalla.Type{Kind: kalla.TypeVarchar}, decText, true, "text", true
}

// numericTypmod decodes numeric(p,s)'s type modifier into a DECIMAL shape.
// Postgres 15 allows a negative scale (numeric(2,-3) holds multiples of
// 1000) and a scale above the precision (numeric(3,5) holds 0.00xyz); both
// become an ordinary DECIMAL wide enough for the values.
func numericTypmod(typmod int32) (p, s int, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	tm := typmod - 4
	p = int(tm>>16) & 0xffff
	s = int(((tm & 0x7ff) ^ 1024) - 1024)
	if s < 0 {
		return p - s, 0, true
	}
	if s > p {
		p = s
	}
	return p, s, true
}

// inferDecimals picks a DECIMAL for numeric columns without a usable
// modifier (unconstrained, or wider than 38 digits) from the data: one
// aggregate query reads each column's largest scale and integer digits.
// The precision is then rounded up to 18 or 38, the widths DuckDB stores in
// 64 and 128 bits anyway, which leaves room for rows added before Scan's
// snapshot at no cost. A column whose values need more than 38 digits is
// read as text, with a warning.
func (s *Source) inferDecimals(ctx context.Context, conn *pgx.Conn, rel *relation, idx []int, typmods []int32) error {
	var sel []string
	for _, i := range idx {
		q := pgx.Identifier{rel.cols[i].name}.Sanitize()
		sel = append(sel,
			fmt.Sprintf("max(scale(%s))", q),
			fmt.Sprintf("max(length(trunc(abs(%[1]s))::text)) FILTER (WHERE scale(%[1]s) IS NOT NULL)", q))
	}
	vals := make([]*int32, 2*len(idx))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := conn.QueryRow(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+rel.ident).Scan(dest...); err != nil {
		return fmt.Errorf("measure numeric columns of %s: %w", rel.display, err)
	}
	for k, i := range idx {
		c := &rel.cols[i]
		scale, digits := 0, 1
		if vals[2*k] != nil {
			scale = int(*vals[2*k])
		}
		if vals[2*k+1] != nil {
			digits = int(*vals[2*k+1])
		}
		if _, sc, ok := numericTypmod(typmods[k]); ok {
			scale = sc // numeric(50,2): every value has scale 2
		}
		need := digits + scale
		switch {
		case need <= 18:
			c.typ = kalla.Type{Kind: kalla.TypeDecimal, Precision: 18, Scale: scale}
		case need <= kalla.MaxDecimalPrecision:
			c.typ = kalla.Type{Kind: kalla.TypeDecimal, Precision: kalla.MaxDecimalPrecision, Scale: scale}
		default:
			s.log.Warn("numeric column too wide for DECIMAL(38): reading it as text",
				"column", c.name, "integer_digits", digits, "scale", scale)
			c.asText()
		}
	}
	return nil
}

// findDeclared returns the column of declared named name, or nil.
func findDeclared(declared []kalla.Column, name string) *kalla.Column {
	for i := range declared {
		if declared[i].Name == name {
			return &declared[i]
		}
	}
	return nil
}

// findColumn returns the index of the column named name, or -1.
func (r *relation) findColumn(name string) int {
	for i, c := range r.cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// columnNames lists the columns for messages.
func (r *relation) columnNames() string {
	cols := make([]kalla.Column, len(r.cols))
	for i, c := range r.cols {
		cols[i].Name = c.name
	}
	return kalla.ColumnNames(cols)
}
