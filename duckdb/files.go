package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/kalla-dev/kalla"
)

// describeFiles decides the columns of a file source and the table
// expression that reads them.
func (s *Session) describeFiles(ctx context.Context, t *table, src *kalla.FileSource) error {
	path := quoteLiteral(src.Pattern)
	switch src.Format {
	case kalla.FormatParquet:
		t.from = fmt.Sprintf("read_parquet(%s, union_by_name = true)", path)
		cols, types, err := s.describe(ctx, "SELECT * FROM "+t.from)
		if err != nil {
			return fmt.Errorf("read parquet %s: %w", src.Pattern, err)
		}
		t.cols, t.types, t.view = cols, types, true
		return nil
	case kalla.FormatCSV:
		return s.describeCSV(ctx, t, src.Pattern)
	default:
		return fmt.Errorf("unsupported file format %q", src.Format)
	}
}

// describeCSV types the columns of a CSV file exactly: DuckDB's sniffer
// types dates, times and booleans, and the columns it calls numeric are
// typed from their values (decideNumeric): from a sample of them here, and
// checked against every value as they are staged (loadCSV).
func (s *Session) describeCSV(ctx context.Context, t *table, pattern string) error {
	// Reconciliation files have a header row; the sniffer cannot tell one
	// when every column is text, so it is not left to guess.
	base := fmt.Sprintf("read_csv(%s, header = true, %s", quoteLiteral(pattern), csvQuotedEmpty)
	sniffed, sniffedTypes, err := s.describe(ctx, "SELECT * FROM "+base+")")
	if err != nil {
		return fmt.Errorf("read csv %s: %w", pattern, err)
	}
	ct := &csvTyping{base: base}
	for i, c := range sniffed {
		switch c.Type.Kind {
		case kalla.TypeSmallint, kalla.TypeInteger, kalla.TypeBigint, kalla.TypeDouble, kalla.TypeReal, kalla.TypeDecimal:
			ct.numeric = append(ct.numeric, i)
		}
	}
	if len(ct.numeric) > 0 {
		if err := s.typeNumeric(ctx, ct, sniffed, sniffedTypes); err != nil {
			return fmt.Errorf("read csv %s: %w", pattern, err)
		}
	}
	t.from = base + ", " + textTypes(sniffed, sniffedTypes, nil) + ")"
	t.cols, t.types, t.csv = sniffed, sniffedTypes, ct
	return s.settleFiltered(ctx, t)
}

// csvQuotedEmpty reads a quoted empty field ("") as an empty string and
// only an unquoted one as NULL, as Postgres COPY and DuckDB's own CSV
// writer mean them: DuckDB's reader would otherwise turn every empty
// string into NULL, and "" = "" would no longer match.
const csvQuotedEmpty = "allow_quoted_nulls = false"

// filterSQL renders the WHERE clause of a file source's filters. Operands
// are SQL literals cast to the column's type; each is checked by DuckDB
// first, so a value the column cannot hold is reported against the filter.
func (s *Session) filterSQL(ctx context.Context, t *table) (string, error) {
	var conds []string
	for k, f := range t.filters {
		field := fmt.Sprintf("filters[%d]", k)
		idx := -1
		for i, c := range t.cols {
			if strings.EqualFold(c.Name, f.Column) {
				idx = i
			}
		}
		if idx < 0 {
			return "", kalla.Invalid(field+".column", "column %q is not in source %q (columns: %s)", f.Column, t.alias, kalla.ColumnNames(t.cols))
		}
		ops, err := f.Operands()
		if err != nil {
			return "", err
		}
		col := t.cols[idx]
		typ := t.types[idx]
		lits := make([]string, len(ops))
		for i, op := range ops {
			lits[i] = fmt.Sprintf("CAST(%s AS %s)", quoteLiteral(op.Text), typ)
			if f.Op == kalla.OpLike {
				lits[i] = quoteLiteral(op.Text)
			}
			var ignored sql.NullString
			if err := s.conn.QueryRowContext(ctx, "SELECT "+lits[i]+"::VARCHAR").Scan(&ignored); err != nil {
				return "", kalla.Invalid(field+".value", "%q is not a valid %s for column %q", op.Text, typ, col.Name)
			}
		}
		c := quoteIdent(col.Name)
		if f.Op == kalla.OpLike && col.Type.Kind != kalla.TypeVarchar {
			// LIKE matches the value's text, as Postgres sources do
			// (column::text); DuckDB has no LIKE on other types.
			c = "CAST(" + c + " AS VARCHAR)"
		}
		switch f.Op {
		case kalla.OpBetween:
			conds = append(conds, fmt.Sprintf("%s BETWEEN %s AND %s", c, lits[0], lits[1]))
		case kalla.OpIn:
			conds = append(conds, fmt.Sprintf("%s IN (%s)", c, strings.Join(lits, ", ")))
		default:
			conds = append(conds, fmt.Sprintf("%s %s %s", c, f.Op.SQL(), lits[0]))
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), nil
}
