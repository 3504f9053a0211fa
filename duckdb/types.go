package duckdb

import (
	"fmt"
	"strings"

	"github.com/kalla-dev/kalla"
)

// parseType maps a DuckDB type name to a kalla.Type. Types Kalla has no kind
// for are reported as VARCHAR, which only matters for sources that Kalla
// copies row by row; file sources keep their DuckDB type.
func parseType(name string) kalla.Type {
	upper := strings.ToUpper(strings.TrimSpace(name))
	if strings.HasPrefix(upper, "DECIMAL(") {
		var p, s int
		if _, err := fmt.Sscanf(upper, "DECIMAL(%d,%d)", &p, &s); err == nil {
			return kalla.Type{Kind: kalla.TypeDecimal, Precision: p, Scale: s}
		}
	}
	switch upper {
	case "BOOLEAN":
		return kalla.Type{Kind: kalla.TypeBoolean}
	case "SMALLINT", "TINYINT", "UTINYINT":
		return kalla.Type{Kind: kalla.TypeSmallint}
	case "INTEGER", "USMALLINT":
		return kalla.Type{Kind: kalla.TypeInteger}
	case "BIGINT", "UINTEGER":
		return kalla.Type{Kind: kalla.TypeBigint}
	case "FLOAT", "REAL":
		return kalla.Type{Kind: kalla.TypeReal}
	case "DOUBLE":
		return kalla.Type{Kind: kalla.TypeDouble}
	case "DATE":
		return kalla.Type{Kind: kalla.TypeDate}
	case "TIMESTAMP":
		return kalla.Type{Kind: kalla.TypeTimestamp}
	case "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ":
		return kalla.Type{Kind: kalla.TypeTimestampTZ}
	case "TIME":
		return kalla.Type{Kind: kalla.TypeTime}
	case "UUID":
		return kalla.Type{Kind: kalla.TypeUUID}
	case "BLOB":
		return kalla.Type{Kind: kalla.TypeBlob}
	case "JSON":
		return kalla.Type{Kind: kalla.TypeJSON}
	}
	return kalla.Type{Kind: kalla.TypeVarchar}
}
