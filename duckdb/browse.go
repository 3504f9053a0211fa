package duckdb

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

var _ kalla.ResultBrowser = (*Browser)(nil)

// Browser reads result files for the console (kalla.ResultBrowser). Each
// result folder gets a database of its own, locked down to that folder
// (the lockdown of a job's session), kept open while it is used and closed
// after browseIdle: opening one costs 20-45 ms, a good part of the rows
// page's 300 ms budget (BenchmarkRowsPage in ui/). Row counts and facet
// values, which scan the whole file, are remembered per file version
// (path, size, modification time), so paging through a filter scans it
// once.
type Browser struct {
	engine *Engine
	mu     sync.Mutex
	dbs    map[string]*browseDB
	// memo holds counts (int64) and facet values ([]string) by file
	// version and query.
	memo map[string]any
}

// browseDB is the database of one result folder.
type browseDB struct {
	connector *duckdb.Connector
	db        *sql.DB
	users     int
	used      time.Time
}

// browseIdle is how long a folder's database stays open unused; maxMemo
// bounds the remembered counts and facets (the memo starts over beyond).
const (
	browseIdle = time.Minute
	maxMemo    = 4096
)

// NewBrowser returns a Browser on e's settings.
func NewBrowser(e *Engine) *Browser {
	return &Browser{engine: e, dbs: map[string]*browseDB{}, memo: map[string]any{}}
}

// Close closes the folders' databases.
func (b *Browser) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for dir, d := range b.dbs {
		d.db.Close()
		d.connector.Close()
		delete(b.dbs, dir)
	}
	return nil
}

// open returns the database of folder dir, opening it if need be, and
// closes the databases of other folders idle for browseIdle.
func (b *Browser) open(dir string) (*browseDB, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for k, d := range b.dbs {
		if k != dir && d.users == 0 && now.Sub(d.used) > browseIdle {
			d.db.Close()
			d.connector.Close()
			delete(b.dbs, k)
		}
	}
	if d, ok := b.dbs[dir]; ok {
		d.users++
		d.used = now
		return d, nil
	}
	setup := slices.Concat(b.engine.settings, []string{"SET preserve_insertion_order = true"}, lockdown([]string{dir + string(filepath.Separator)}))
	connector, err := openDatabase(setup)
	if err != nil {
		return nil, fmt.Errorf("open browse database: %w", err)
	}
	d := &browseDB{connector: connector, db: sql.OpenDB(connector), users: 1, used: now}
	b.dbs[dir] = d
	return d, nil
}

func (b *Browser) release(d *browseDB) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d.users--
	d.used = time.Now()
}

// remembered returns the value kept under key, or computes and keeps it.
func remembered[T any](b *Browser, key string, compute func() (T, error)) (T, error) {
	b.mu.Lock()
	v, ok := b.memo[key].(T)
	b.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := compute()
	if err != nil {
		return v, err
	}
	b.mu.Lock()
	if len(b.memo) >= maxMemo {
		clear(b.memo)
	}
	b.memo[key] = v
	b.mu.Unlock()
	return v, nil
}

// browse calls fn with a connection to the database of folder dir, the
// SQL that reads the file name in it, and the file's version (for the
// memo). Unlike a job's session the database keeps insertion order, so
// that rows are paged in file order.
func (b *Browser) browse(ctx context.Context, dir, name string, fn func(conn *sql.Conn, path, version string) error) error {
	if name == "" || filepath.Base(name) != name || !strings.HasSuffix(name, ".parquet") {
		return kalla.Invalid("file", "%q is not a Parquet file name of a result folder", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("result folder %s: %w", dir, err)
	}
	path := filepath.Join(abs, name)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("result file: %w", err)
	}
	d, err := b.open(abs)
	if err != nil {
		return err
	}
	defer b.release(d)
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect browse database: %w", err)
	}
	defer conn.Close()
	version := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	return fn(conn, path, version)
}

// readParquet is the table function that reads path.
func readParquet(path string) string { return "read_parquet(" + quoteLiteral(path) + ")" }

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
func (b *Browser) Rows(ctx context.Context, dir, name string, q kalla.RowQuery) (*kalla.RowPage, error) {
	page := &kalla.RowPage{}
	err := b.browse(ctx, dir, name, func(conn *sql.Conn, path, version string) error {
		from := readParquet(path)
		cols, err := remembered(b, version+"\x00columns", func() ([]string, error) { return columnsOf(ctx, conn, from) })
		if err != nil {
			return err
		}
		page.Columns = cols
		cond, args, err := where(q, cols)
		if err != nil {
			return err
		}
		page.Total, err = remembered(b, fmt.Sprintf("%s\x00count%s%q", version, cond, args), func() (int64, error) {
			var n int64
			if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+from+cond, args...).Scan(&n); err != nil {
				return 0, fmt.Errorf("count the result rows: %w", err)
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		offset, limit := max(q.Offset, 0), max(q.Limit, 0)
		query := "SELECT " + selectText(cols) + " FROM " + from + cond + fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
		if cond == "" && !slices.Contains(cols, "file_row_number") {
			// Unfiltered, a page is a range of row numbers, which DuckDB
			// finds from the row groups' statistics instead of reading
			// every row before it: a deep page of a 5M-row file then
			// costs what the first one does.
			query = fmt.Sprintf("SELECT %s FROM read_parquet(%s, file_row_number = true) WHERE file_row_number >= %d AND file_row_number < %d ORDER BY file_row_number",
				selectText(cols), quoteLiteral(path), offset, offset+limit)
		}
		err = scanRows(ctx, conn, query, args, len(cols), func(row []*string) error {
			page.Rows = append(page.Rows, slices.Clone(row))
			return nil
		})
		if err != nil {
			return err
		}
		return b.facets(ctx, conn, from, version, cols, q.Facets, page)
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
func (b *Browser) facets(ctx context.Context, conn *sql.Conn, from, version string, cols, want []string, page *kalla.RowPage) error {
	for _, c := range want {
		if !slices.Contains(cols, c) {
			continue
		}
		if page.Facets == nil {
			page.Facets = map[string][]string{}
		}
		query := fmt.Sprintf("SELECT v FROM (SELECT CAST(%s AS VARCHAR) AS v, count(*) AS n FROM %s GROUP BY ALL) WHERE v IS NOT NULL ORDER BY n DESC, v LIMIT %d",
			quoteIdent(c), from, kalla.MaxFacetValues)
		vals, err := remembered(b, version+"\x00facet\x00"+c, func() ([]string, error) {
			vals := []string{}
			err := scanRows(ctx, conn, query, nil, 1, func(row []*string) error {
				vals = append(vals, *row[0])
				return nil
			})
			return vals, err
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
func (b *Browser) WriteCSV(ctx context.Context, dir, name string, q kalla.RowQuery, w io.Writer) error {
	return b.browse(ctx, dir, name, func(conn *sql.Conn, path, _ string) error {
		from := readParquet(path)
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
