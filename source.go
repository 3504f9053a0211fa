package kalla

import (
	"context"
	"fmt"
	"strings"
)

// Source is one side of a reconciliation, opened from its URI. Opening is
// cheap and checks only the URI; Split and Read do the I/O.
//
// Every kind (local CSV and Parquet files, Postgres, S3 objects, and any
// later one) implements these four methods, and the engine and the
// distributed tasks use nothing else: the conformance suite
// (internal/conformance) holds every kind to one contract through them.
//
// A source is read in splits. Split cuts it into at most n; a source that
// cannot split returns one split, Whole, which reads all of it; a local job
// never splits and reads Whole. Read then says how the engine reads one
// split, as a Reading of one of two shapes, because the fast path differs
// by kind and must stay:
//
//   - Files: local files the engine reads itself with its own CSV or
//     Parquet reader. Local files are read where they are (Local says
//     which): DuckDB reads Parquet in place as fast as its own tables, so
//     staging it would cost more than the whole match; CSV is typed by the
//     engine from every value. S3 objects are first copied into dir, a
//     folder of the engine's (the whole objects, or a split's row groups).
//   - Rows: our code streams the rows to a sink (Postgres: COPY binary
//     into DuckDB's data chunks, in parallel ctid ranges).
//
// Where a split is made follows from what keeps it consistent. A split
// that must be held (a Postgres snapshot, until Release) is made by the
// cluster's coordinator, which outlives the stage tasks reading it; splits
// of files (S3 Parquet row groups) need nothing held and are made by the
// plan task. The engine may cut a Files reading further by itself (local
// CSV in byte ranges, SourceSplit.Cut): the cut needs the dialect its CSV
// sniffer reads, so it belongs to the engine, not to the source.
//
// Carry-over of a previous run's results (issue 14) plugs in as one more
// kind, a small file: Split returns Whole, Read returns Files naming the
// previous run's Parquet results (Local them too when they are local), and
// the engine applies the job's filters as it does to any file.
type Source interface {
	// Split divides the rows that pass filters into at most n splits that
	// hold every such row exactly once, and decides the columns every
	// split is read with. With n < 2, or when the source cannot or need
	// not be cut, it returns one split (Whole, or one the source
	// describes). The caller must Release the result once every split is
	// read: until then the source may hold what keeps the splits
	// consistent. Filter errors are *ValidationError.
	Split(ctx context.Context, filters []Filter, n int) (*SourceSplits, error)
	// Read makes one split (Whole, or one of Split's) readable by the
	// engine. dir is an empty folder the engine owns and removes, where
	// the source may copy files. A missing, denied or malformed source is
	// a *ValidationError on "uri" (Postgres reports a refused connection
	// when the rows are read). With split.Schema set, Files may hold only
	// the columns and no row when the source can say them without the
	// data (a plan validates a job with them).
	Read(ctx context.Context, split SourceSplit, dir string) (Reading, error)
	// Local returns the local files the source reads in place, known
	// without I/O (the engine's sandbox allows them, and a Parquet source
	// read in place is not staged in cluster mode); nil for a source
	// copied or streamed from elsewhere.
	Local() *FileSource
	// Close releases connections and unreleased splits; it is safe to call
	// more than once.
	Close() error
}

// Reading is how the engine reads one split of a Source: exactly one of
// Files and Rows is set.
type Reading struct {
	// Files are local files the engine reads with its own reader;
	// filters are applied by the engine.
	Files *FileSource
	// Rows streams the rows; it applies the filters itself.
	Rows RowReader
}

// RowReader is a Reading whose rows Kalla's own code reads and hands to the
// engine (Postgres through COPY, for example).
type RowReader interface {
	// Columns returns the columns in the order Scan writes them. It is where
	// an unreachable server or a missing table is reported.
	Columns(ctx context.Context) ([]Column, error)
	// Scan writes every row that passes filters to sink, in as many parallel
	// streams as it sees fit (at most parallelism), each through its own
	// RowWriter. It returns only after every writer is closed.
	Scan(ctx context.Context, filters []Filter, parallelism int, sink RowSink) error
}

// RowSink receives the rows of a RowReader.
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

// FileFormat is the format of files the engine reads itself.
type FileFormat string

// The file formats DuckDB reads natively.
const (
	FormatCSV     FileFormat = "csv"
	FormatParquet FileFormat = "parquet"
)

// FileSource is a set of local files (a path or a glob) of one format, as
// the engine reads them.
type FileSource struct {
	// Pattern is a path or glob as DuckDB accepts it.
	Pattern string
	Format  FileFormat
}

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
