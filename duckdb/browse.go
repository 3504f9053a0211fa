package duckdb

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
)

var _ kalla.ResultBrowser = (*Engine)(nil)

// browse opens a database that may read the folder dir only (the lockdown
// of a job's session, with dir its one allowed folder), and calls fn with a
// connection and the SQL that reads the file name in dir. A database per
// call keeps the console's reads apart from each other and from jobs; it
// costs 20-45 ms to open, inside the rows page's 300 ms budget
// (BenchmarkRowsPage in ui/). Unlike a job's session it keeps insertion
// order, so that LIMIT/OFFSET pages through a file in its order.
func (e *Engine) browse(ctx context.Context, dir, name string, fn func(conn *sql.Conn, from string) error) error {
	if name == "" || filepath.Base(name) != name || !strings.HasSuffix(name, ".parquet") {
		return kalla.Invalid("file", "%q is not a Parquet file name of a result folder", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("result folder %s: %w", dir, err)
	}
	setup := slices.Concat(e.settings, []string{"SET preserve_insertion_order = true"}, lockdown([]string{abs + string(filepath.Separator)}))
	connector, err := openDatabase(setup)
	if err != nil {
		return fmt.Errorf("open browse database: %w", err)
	}
	defer connector.Close()
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect browse database: %w", err)
	}
	defer conn.Close()
	return fn(conn, "read_parquet("+quoteLiteral(filepath.Join(abs, name))+")")
}

func columnsOf(ctx context.Context, conn *sql.Conn, from string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+from+")")
	if err != nil {
		return nil, fmt.Errorf("read the columns of the result file: %w", err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read the columns of the result file: %w", err)
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// where builds the WHERE clause of q over cols, with its arguments.
func where(q kalla.RowQuery, cols []string) (string, []any, error) {
	var conds []string
	var args []any
	keys := make([]string, 0, len(q.Equal))
	for k := range q.Equal {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(cols, k) {
			return "", nil, kalla.Invalid(k, "the result file has no column %q", k)
		}
		conds = append(conds, "CAST("+quoteIdent(k)+" AS VARCHAR) = ?")
		args = append(args, q.Equal[k])
	}
	if q.Search != "" {
		var in []string
		for _, c := range q.SearchColumns {
			if slices.Contains(cols, c) {
				in = append(in, c)
			}
		}
		if len(in) == 0 {
			in = cols
		}
		var or []string
		for _, c := range in {
			or = append(or, "CAST("+quoteIdent(c)+" AS VARCHAR) = ?")
			args = append(args, q.Search)
		}
		conds = append(conds, "("+strings.Join(or, " OR ")+")")
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// selectText is the select list that casts every column to text.
func selectText(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "CAST(" + quoteIdent(c) + " AS VARCHAR)"
	}
	return strings.Join(parts, ", ")
}

// Rows implements kalla.ResultBrowser.
func (e *Engine) Rows(ctx context.Context, dir, name string, q kalla.RowQuery) (*kalla.RowPage, error) {
	page := &kalla.RowPage{}
	err := e.browse(ctx, dir, name, func(conn *sql.Conn, from string) error {
		cols, err := columnsOf(ctx, conn, from)
		if err != nil {
			return err
		}
		page.Columns = cols
		cond, args, err := where(q, cols)
		if err != nil {
			return err
		}
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+from+cond, args...).Scan(&page.Total); err != nil {
			return fmt.Errorf("count the result rows: %w", err)
		}
		query := "SELECT " + selectText(cols) + " FROM " + from + cond + fmt.Sprintf(" LIMIT %d OFFSET %d", max(q.Limit, 0), max(q.Offset, 0))
		err = scanRows(ctx, conn, query, args, len(cols), func(row []*string) error {
			page.Rows = append(page.Rows, slices.Clone(row))
			return nil
		})
		if err != nil {
			return err
		}
		return facets(ctx, conn, from, cols, q.Facets, page)
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// scanRows runs query and calls fn with each row's values; the slice is
// reused between calls.
func scanRows(ctx context.Context, conn *sql.Conn, query string, args []any, n int, fn func([]*string) error) error {
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read the result rows: %w", err)
	}
	defer rows.Close()
	vals := make([]sql.NullString, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	row := make([]*string, n)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read the result rows: %w", err)
		}
		for i, v := range vals {
			row[i] = nil
			if v.Valid {
				s := v.String
				row[i] = &s
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the result rows: %w", err)
	}
	return nil
}

// facets lists the most frequent values of the facet columns the file
// has, over the whole file (not the filtered rows: the choices stay put
// while the user filters).
func facets(ctx context.Context, conn *sql.Conn, from string, cols, want []string, page *kalla.RowPage) error {
	for _, c := range want {
		if !slices.Contains(cols, c) {
			continue
		}
		if page.Facets == nil {
			page.Facets = map[string][]string{}
		}
		query := fmt.Sprintf("SELECT v FROM (SELECT CAST(%s AS VARCHAR) AS v, count(*) AS n FROM %s GROUP BY ALL) WHERE v IS NOT NULL ORDER BY n DESC, v LIMIT %d",
			quoteIdent(c), from, kalla.MaxFacetValues)
		vals := []string{}
		err := scanRows(ctx, conn, query, nil, 1, func(row []*string) error {
			vals = append(vals, *row[0])
			return nil
		})
		if err != nil {
			return err
		}
		page.Facets[c] = vals
	}
	return nil
}

// WriteCSV implements kalla.ResultBrowser. NULL is written as an empty
// field, as DuckDB's own CSV writer does.
func (e *Engine) WriteCSV(ctx context.Context, dir, name string, q kalla.RowQuery, w io.Writer) error {
	return e.browse(ctx, dir, name, func(conn *sql.Conn, from string) error {
		cols, err := columnsOf(ctx, conn, from)
		if err != nil {
			return err
		}
		cond, args, err := where(q, cols)
		if err != nil {
			return err
		}
		query := "SELECT " + selectText(cols) + " FROM " + from + cond
		if q.Limit > 0 {
			query += fmt.Sprintf(" LIMIT %d OFFSET %d", q.Limit, max(q.Offset, 0))
		}
		cw := csv.NewWriter(w)
		if err := cw.Write(cols); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
		rec := make([]string, len(cols))
		err = scanRows(ctx, conn, query, args, len(cols), func(row []*string) error {
			for i, v := range row {
				rec[i] = ""
				if v != nil {
					rec[i] = *v
				}
			}
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("write CSV: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	})
}
