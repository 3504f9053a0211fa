package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

// defaultMinSplitBytes is the smallest share of a CSV source given a stage
// task of its own: below it, starting a task costs more than reading the
// bytes.
const defaultMinSplitBytes = 8 << 20

// csvDialect is how a CSV source is written, as DuckDB's sniffer read it
// from the whole source: each split is read with exactly these options, so
// its rows parse as they do in the whole file.
type csvDialect struct {
	Delim           string `json:"delim"`
	Quote           string `json:"quote"`
	Escape          string `json:"escape"`
	DateFormat      string `json:"date_format,omitempty"`
	TimestampFormat string `json:"timestamp_format,omitempty"`
}

// csvRange is the bytes [Start, End) of a CSV file: whole records, never
// its header.
type csvRange struct {
	Path  string `json:"path"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// csvSplit is the Data of a split of a CSV source: its byte ranges, the
// dialect, and the DuckDB types of every column.
//
// The column types are decided once, for the whole source, by the plan
// task (describeCSV types from a sample, settleCSV checks every value of
// every file before cutting), and travel in the split. Deciding them per range would type a
// column BIGINT in one range and DECIMAL or VARCHAR in another (a range
// without decimals, or with a "007"), and the staged partitions could not
// be combined; staging text and deciding from merged per-range statistics
// would also work but reads every value twice more.
type csvSplit struct {
	Dialect csvDialect `json:"dialect"`
	Types   []string   `json:"types"`
	Ranges  []csvRange `json:"ranges"`
}

// SplitFiles implements distributed.Session: a local CSV source (a file or a
// glob) attached as alias is cut into up to n splits of at least
// Config.MinCSVSplitBytes, at record boundaries: whole files, and large files in
// byte ranges. It returns nil when the source is not local CSV files, when
// it is too small to split, or when its dialect (skipped lines, comments,
// CR line ends) is one this cutter does not follow.
func (s *Session) SplitFiles(ctx context.Context, alias string, n int) ([]kalla.SourceSplit, error) {
	t, ok := s.tables[alias]
	if !ok {
		return nil, fmt.Errorf("source %q is not attached", alias)
	}
	fs := t.files
	if fs == nil || fs.Format != kalla.FormatCSV || t.src.Local() == nil || n < 2 {
		return nil, nil
	}
	files, err := filepath.Glob(fs.Pattern)
	if err != nil || len(files) == 0 {
		return nil, nil // a pattern only DuckDB expands: read it whole
	}
	d, ok, err := s.sniffDialect(ctx, files[0])
	if err != nil || !ok {
		return nil, err
	}
	parts, err := cutCSV(ctx, files, d, n, s.engine.minSplitBytes)
	if err != nil || len(parts) < 2 {
		return nil, err
	}
	// Only a source that is cut needs its types final here: one read
	// whole types itself as it is staged.
	if err := s.settleCSV(ctx, t); err != nil {
		return nil, err
	}
	splits := make([]kalla.SourceSplit, len(parts))
	for i, ranges := range parts {
		data, err := json.Marshal(csvSplit{Dialect: d, Types: t.types, Ranges: ranges})
		if err != nil {
			return nil, err
		}
		splits[i] = kalla.SourceSplit{Columns: t.cols, Cut: data}
	}
	return splits, nil
}

// sniffDialect reads the dialect DuckDB detects in path; ok is false for a
// dialect the cutter cannot follow.
func (s *Session) sniffDialect(ctx context.Context, path string) (d csvDialect, ok bool, err error) {
	var newLine, comment string
	var skip int64
	var dateFormat, tsFormat sql.NullString
	q := "SELECT Delimiter, Quote, Escape, NewLineDelimiter, SkipRows, Comment, DateFormat, TimestampFormat FROM sniff_csv(" +
		quoteLiteral(path) + ", header = true)"
	if err := s.conn.QueryRowContext(ctx, q).Scan(&d.Delim, &d.Quote, &d.Escape, &newLine, &skip, &comment, &dateFormat, &tsFormat); err != nil {
		return d, false, fmt.Errorf("sniff csv %s: %w", path, cleanError(err))
	}
	d.DateFormat, d.TimestampFormat = dateFormat.String, tsFormat.String
	// The sniffer spells an unset character "(empty)".
	for _, v := range []*string{&d.Quote, &d.Escape, &comment} {
		if *v == "(empty)" {
			*v = ""
		}
	}
	ok = skip == 0 && comment == "" && d.Delim != "" && len(d.Quote) <= 1 && len(d.Escape) <= 1 &&
		(newLine == `\n` || newLine == `\r\n`)
	return d, ok, nil
}

// cutCSV cuts files into up to n groups of ranges of about the same size,
// at least minBytes each, at record ends (see recordEnds).
func cutCSV(ctx context.Context, files []string, d csvDialect, n int, minBytes int64) ([][]csvRange, error) {
	var total int64
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		total += info.Size()
	}
	chunk := max(total/int64(n), minBytes, 1)
	var (
		parts [][]csvRange
		cur   []csvRange
		acc   int64 // bytes in cur
	)
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		header, start := int64(-1), int64(0)
		size, err := recordEnds(ctx, f, byteOf(d.Quote), byteOf(d.Escape), func(end int64) {
			if header < 0 {
				header, start = end, end
				return
			}
			if acc+end-start >= chunk {
				parts = append(parts, append(cur, csvRange{Path: path, Start: start, End: end}))
				cur, acc, start = nil, 0, end
			}
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read csv %s: %w", path, err)
		}
		if header >= 0 && size > start {
			cur = append(cur, csvRange{Path: path, Start: start, End: size})
			acc += size - start
		}
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	if len(parts) > n {
		// The remainder after n full chunks joins the last of them.
		parts[n-1] = append(parts[n-1], flatten(parts[n:])...)
		parts = parts[:n]
	}
	return parts, nil
}

// flatten flattens groups of ranges.
func flatten(groups [][]csvRange) []csvRange {
	var out []csvRange
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func byteOf(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// recordEnds reads r and calls end with the offset just past each newline
// that ends a record, and returns the bytes read. A newline inside a quoted
// field ends nothing: a quote opens a quoted field and the next quote not
// escaped closes it. With escape equal to quote (RFC 4180's doubled "")
// the doubled quote closes and reopens the field, which is the same. An
// escape different from the quote escapes the next byte inside a quoted
// field. quote 0 means fields are never quoted.
func recordEnds(ctx context.Context, r io.Reader, quote, escape byte, end func(int64)) (int64, error) {
	outside, inside := "\n", ""
	if quote != 0 {
		outside += string(quote)
		inside = string(quote)
		if escape != 0 && escape != quote {
			inside += string(escape)
		}
	}
	buf := make([]byte, 1<<20)
	var off int64
	quoted, skip := false, false
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		n, err := r.Read(buf)
		b := buf[:n]
		for i := 0; i < len(b); i++ {
			if skip {
				skip = false
				continue
			}
			set := outside
			if quoted {
				set = inside
			}
			j := bytes.IndexAny(b[i:], set)
			if j < 0 {
				break
			}
			i += j
			switch c := b[i]; {
			case quoted && c == escape && escape != quote:
				skip = true
			case quoted:
				quoted = false
			case c == '\n':
				end(off + int64(i) + 1)
			default:
				quoted = true
			}
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// describeCut declares t as one cut of a CSV source made by SplitFiles (the
// split's Cut): its ranges copied into one file of the session's folder and
// read with the whole source's dialect and column types.
func (s *Session) describeCut(ctx context.Context, t *table, split kalla.SourceSplit) error {
	var sp csvSplit
	if err := json.Unmarshal(split.Cut, &sp); err != nil {
		return fmt.Errorf("read csv split: %w", err)
	}
	if len(sp.Types) != len(split.Columns) {
		return fmt.Errorf("csv split has %d types for %d columns", len(sp.Types), len(split.Columns))
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("create session folder: %w", err)
	}
	path := filepath.Join(s.dir, "split-"+t.alias+".csv")
	if err := copyRanges(ctx, path, sp.Ranges); err != nil {
		return fmt.Errorf("copy csv split: %w", err)
	}
	cols := make([]string, len(sp.Types))
	for i, c := range split.Columns {
		cols[i] = quoteLiteral(c.Name) + ": " + quoteLiteral(sp.Types[i])
	}
	d := sp.Dialect
	opts := []string{
		quoteLiteral(path), "auto_detect = false", "header = false",
		"delim = " + quoteLiteral(d.Delim), "quote = " + quoteLiteral(d.Quote), "escape = " + quoteLiteral(d.Escape), csvQuotedEmpty,
		"columns = {" + strings.Join(cols, ", ") + "}",
	}
	if d.DateFormat != "" {
		opts = append(opts, "dateformat = "+quoteLiteral(d.DateFormat))
	}
	if d.TimestampFormat != "" {
		opts = append(opts, "timestampformat = "+quoteLiteral(d.TimestampFormat))
	}
	t.cols, t.types = split.Columns, sp.Types
	t.from = "read_csv(" + strings.Join(opts, ", ") + ")"
	return nil
}

// copyRanges writes the ranges one after the other into path, each ending
// with a newline.
func copyRanges(ctx context.Context, path string, ranges []csvRange) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, r := range ranges {
		if err := copyRange(ctx, out, r); err != nil {
			return err
		}
	}
	return out.Close()
}

func copyRange(ctx context.Context, out *os.File, r csvRange) error {
	in, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	n, err := io.Copy(out, ctxReader{ctx, io.NewSectionReader(in, r.Start, r.End-r.Start)})
	if err != nil {
		return err
	}
	if n != r.End-r.Start {
		return fmt.Errorf("%s is shorter than when it was split (%d bytes at %d, want %d)", r.Path, n, r.Start, r.End-r.Start)
	}
	last := make([]byte, 1)
	if _, err := in.ReadAt(last, r.End-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		// The file's last record has no line end: the next range must not
		// continue it.
		_, err = out.Write([]byte{'\n'})
	}
	return err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
