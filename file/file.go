// Package file reads sources from, and writes results to, the local file
// system: paths, file:// URIs and globs of CSV or Parquet files.
package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

// Files opens local sources and outputs within the folders Paths allows
// (nil: anywhere the process may read and write).
type Files struct {
	Paths *kalla.AllowList
}

// OpenSource opens a local source anywhere; see Files.OpenSource.
func OpenSource(ctx context.Context, uri string) (kalla.Source, error) {
	return (&Files{}).OpenSource(ctx, uri)
}

// OpenOutput opens a local output folder anywhere; see Files.OpenOutput.
func OpenOutput(ctx context.Context, path string) (kalla.Output, error) {
	return (&Files{}).OpenOutput(ctx, path)
}

// OpenSource turns a path, glob or file:// URI into a *Source after
// checking that it names at least one readable file of a known format
// and that every file it names is, symlinks resolved, in an allowed folder.
func (f *Files) OpenSource(_ context.Context, uri string) (kalla.Source, error) {
	path := strings.TrimPrefix(uri, "file://")
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	matches := []string{path}
	if i := strings.IndexAny(path, "*?["); i >= 0 {
		// The folder before the pattern first, so that a glob elsewhere
		// does not tell which files exist there.
		if err := f.Paths.CheckPath(path[:strings.LastIndexByte(path[:i], filepath.Separator)+1]); err != nil {
			return nil, kalla.Invalid("uri", "%v", err)
		}
		matches, err = filepath.Glob(path)
		if err != nil {
			return nil, kalla.Invalid("uri", "malformed glob %q: %v", path, err)
		}
		if len(matches) == 0 {
			return nil, kalla.Invalid("uri", "no file matches %q", path)
		}
	}
	for _, m := range matches {
		if err := f.Paths.CheckPath(m); err != nil {
			return nil, kalla.Invalid("uri", "%v", err)
		}
		if err := checkReadable(m); err != nil {
			return nil, err
		}
	}
	return NewSource(path, format), nil
}

// FormatOf tells a file's format from its extension; compressed CSV
// (.csv.gz, .csv.zst) is CSV.
func FormatOf(path string) (kalla.FileFormat, error) {
	lower := strings.ToLower(path)
	for _, ext := range []string{".gz", ".zst"} {
		lower = strings.TrimSuffix(lower, ext)
	}
	switch {
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".tsv"), strings.HasSuffix(lower, ".txt"):
		return kalla.FormatCSV, nil
	case strings.HasSuffix(lower, ".parquet"), strings.HasSuffix(lower, ".pq"):
		return kalla.FormatParquet, nil
	}
	return "", kalla.Invalid("uri", "cannot tell the format of %q: name a .csv or .parquet file (or a glob such as dir/*.parquet)", path)
}

func checkReadable(path string) error {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return kalla.Invalid("uri", "file %q does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return kalla.Invalid("uri", "file %q is not readable: permission denied", path)
	case err != nil:
		return kalla.Invalid("uri", "cannot open %q: %v", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return kalla.Invalid("uri", "cannot stat %q: %v", path, err)
	}
	if info.IsDir() {
		return kalla.Invalid("uri", "%q is a folder: name the files, e.g. %s", path, filepath.Join(path, "*.csv"))
	}
	return nil
}
