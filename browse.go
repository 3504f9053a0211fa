package kalla

import (
	"context"
	"io"
)

// RowQuery selects rows of a result file for display: the console's rows
// page and its downloads.
type RowQuery struct {
	// Equal keeps the rows whose column (the key) has the value, compared
	// as text: the console's rule and reason filters.
	Equal map[string]string
	// Search, when set, keeps the rows where one of SearchColumns, as
	// text, equals it (a key lookup); with no SearchColumns, any column.
	Search        string
	SearchColumns []string
	// Offset and Limit page through the selected rows, in file order;
	// Limit 0 means every row (downloads).
	Offset, Limit int64
	// Facets are columns whose most frequent values RowPage.Facets lists
	// (the choices of the rule and reason filters); a facet the file lacks
	// is left out.
	Facets []string
}

// RowPage is one page of a result file's rows, every value as text: what
// DuckDB's cast to VARCHAR writes, so a DECIMAL shows the digits it holds.
type RowPage struct {
	Columns []string
	// Rows hold one value per column; nil is SQL NULL.
	Rows [][]*string
	// Total counts the rows the query selects, over all pages.
	Total int64
	// Facets holds up to MaxFacetValues values of each of the query's
	// facets that the file has, most frequent first.
	Facets map[string][]string
}

// MaxFacetValues bounds the values RowPage.Facets lists per column.
const MaxFacetValues = 100

// ResultBrowser reads a job's result files for people: pages of rows,
// filtered and searched, and the whole selection as CSV. The console uses
// it; duckdb.Engine implements it. dir is the result folder (a local
// folder: the only one an implementation may read) and name a file in it
// (matched.parquet, ...).
type ResultBrowser interface {
	// Rows returns the page of rows q selects. A column q names that the
	// file lacks is a *ValidationError naming it.
	Rows(ctx context.Context, dir, name string, q RowQuery) (*RowPage, error)
	// WriteCSV streams the rows q selects to w as CSV with a header line,
	// without holding them in memory.
	WriteCSV(ctx context.Context, dir, name string, q RowQuery, w io.Writer) error
}
