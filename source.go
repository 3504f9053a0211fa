package kalla

import (
	"context"
	"fmt"
	"strings"
)

// Source is one side of a reconciliation, opened from its URI. Opening is
// cheap and checks only the URI; Columns and Scan do the I/O.
//
// The engine reads a Source in one of three ways: a *FileSource it reads
// itself (DuckDB's CSV and Parquet readers are faster than anything we could
// hand it), a FetchSource that it first asks for local files, and a RowSource
// whose rows our code hands it.
type Source interface {
	// Close releases connections; it is safe to call more than once.
	Close() error
}

// RowSource is a Source whose rows Kalla's own code reads and hands to the
// engine (Postgres through COPY, for example).
type RowSource interface {
	Source
	// Columns returns the columns in the order Scan writes them. It is where
	// an unreachable server or a missing table is reported.
	Columns(ctx context.Context) ([]Column, error)
	// Scan writes every row that passes filters to sink, in as many parallel
	// streams as it sees fit (at most parallelism), each through its own
	// RowWriter. It returns only after every writer is closed.
	Scan(ctx context.Context, filters []Filter, parallelism int, sink RowSink) error
}

// RowSink receives the rows of a RowSource.
type RowSink interface {
	// NewWriter returns a writer for one stream; it may be called from
	// several goroutines, and each writer is used by one goroutine.
	NewWriter(ctx context.Context) (RowWriter, error)
}

// RowWriter appends rows. Values follow the Go types documented on TypeKind;
// nil is NULL. Nothing written is visible until Close returns nil.
type RowWriter interface {
	WriteRow(values ...any) error
	Close() error
}

// FetchSource is a Source whose data are files elsewhere (object storage):
// the engine asks it to bring them into a local folder and then reads them as
// a FileSource. Filters are applied by the engine afterwards.
type FetchSource interface {
	Source
	// Fetch copies the source's data into dir (a folder the engine owns and
	// removes) and returns the local files to read.
	Fetch(ctx context.Context, dir string) (*FileSource, error)
}

// FileFormat is the format of files the engine reads itself.
type FileFormat string

// The file formats DuckDB reads natively.
const (
	FormatCSV     FileFormat = "csv"
	FormatParquet FileFormat = "parquet"
)

// FileSource is a set of local files (a path or a glob) of one format.
type FileSource struct {
	// Pattern is a path or glob as DuckDB accepts it.
	Pattern string
	Format  FileFormat
}

// Close implements Source.
func (*FileSource) Close() error { return nil }

// SourceOpener opens a source from its URI without doing I/O; it returns a
// *ValidationError when the URI is malformed.
type SourceOpener = Opener[Source]

// NewSourceRegistry returns an empty registry of source URI schemes; an
// unknown scheme is reported on the field "uri".
func NewSourceRegistry() *Registry[Source] { return NewRegistry[Source]("uri") }

// Scheme returns the lower-cased scheme of uri, or "file" for a plain path.
func Scheme(uri string) string {
	i := strings.Index(uri, "://")
	if i <= 0 {
		return "file"
	}
	return strings.ToLower(uri[:i])
}

// ColumnNames lists the names of cols, for error messages.
func ColumnNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = fmt.Sprintf("%q", c.Name)
	}
	return strings.Join(names, ", ")
}
