package kalla

import "fmt"

// TypeKind is the logical type of a source column. Every kind maps to one
// DuckDB type, so values arrive in the engine with their type intact.
type TypeKind int

// The column kinds. Values handed to a RowWriter use the Go type noted.
const (
	TypeVarchar     TypeKind = iota // string
	TypeBoolean                     // bool
	TypeSmallint                    // int16
	TypeInteger                     // int32
	TypeBigint                      // int64
	TypeReal                        // float32
	TypeDouble                      // float64
	TypeDecimal                     // unscaled integer: int64 if Precision <= 18, else *big.Int
	TypeDate                        // time.Time (UTC midnight)
	TypeTimestamp                   // time.Time (wall clock, UTC location)
	TypeTimestampTZ                 // time.Time (instant)
	TypeTime                        // time.Time (on 0001-01-01 UTC)
	TypeUUID                        // []byte of length 16
	TypeBlob                        // []byte
	TypeJSON                        // string
)

// Type is a column type; Precision and Scale apply to TypeDecimal only.
type Type struct {
	Kind      TypeKind
	Precision int
	Scale     int
}

// MaxDecimalPrecision is the widest DECIMAL DuckDB stores exactly.
const MaxDecimalPrecision = 38

// SQL returns the type's DuckDB spelling.
func (t Type) SQL() string {
	switch t.Kind {
	case TypeBoolean:
		return "BOOLEAN"
	case TypeSmallint:
		return "SMALLINT"
	case TypeInteger:
		return "INTEGER"
	case TypeBigint:
		return "BIGINT"
	case TypeReal:
		return "REAL"
	case TypeDouble:
		return "DOUBLE"
	case TypeDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case TypeDate:
		return "DATE"
	case TypeTimestamp:
		return "TIMESTAMP"
	case TypeTimestampTZ:
		return "TIMESTAMPTZ"
	case TypeTime:
		return "TIME"
	case TypeUUID:
		return "UUID"
	case TypeBlob:
		return "BLOB"
	case TypeJSON:
		return "JSON"
	default:
		return "VARCHAR"
	}
}

// Column is a named, typed column of a source or a result.
type Column struct {
	Name string
	Type Type
}
