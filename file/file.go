// Package file reads sources from, and writes results to, the local file
// system: paths, file:// URIs and globs of CSV or Parquet files.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalla-dev/kalla"
)

// OpenSource turns a path, glob or file:// URI into a *kalla.FileSource
// after checking that it names at least one readable file of a known format.
func OpenSource(_ context.Context, uri string) (kalla.Source, error) {
	path := strings.TrimPrefix(uri, "file://")
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	matches := []string{path}
	if strings.ContainsAny(path, "*?[") {
		matches, err = filepath.Glob(path)
		if err != nil {
			return nil, kalla.Invalid("uri", "malformed glob %q: %v", path, err)
		}
		if len(matches) == 0 {
			return nil, kalla.Invalid("uri", "no file matches %q", path)
		}
	}
	for _, m := range matches {
		if err := checkReadable(m); err != nil {
			return nil, err
		}
	}
	return &kalla.FileSource{Pattern: path, Format: format}, nil
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

// Output writes a job's results into a local folder. Files are written in a
// hidden sibling folder on the same file system and renamed into place, so
// each file appears whole; summary.json is removed first and renamed last,
// so a reader that sees summary.json sees that run's complete result.
type Output struct {
	dir string
}

var _ kalla.Output = (*Output)(nil)

// OpenOutput opens a local output folder (a path or file:// URI).
func OpenOutput(_ context.Context, path string) (kalla.Output, error) {
	path = strings.TrimPrefix(path, "file://")
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, kalla.Invalid("output_path", "%q: %v", path, err)
	}
	if info, err := os.Stat(abs); err == nil && !info.IsDir() {
		return nil, kalla.Invalid("output_path", "%q is a file, not a folder", path)
	}
	return &Output{dir: abs}, nil
}

// Prepare creates the output folder and a temporary folder inside it.
func (o *Output) Prepare(context.Context) (string, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", o.dir, err)
	}
	return os.MkdirTemp(o.dir, ".kalla-tmp-")
}

// Location implements kalla.Output.
func (o *Output) Location(name string) string { return filepath.Join(o.dir, name) }

// Publish renames the result files into place, summary.json last.
func (o *Output) Publish(_ context.Context, dir string) error {
	if err := os.Remove(o.Location(kalla.SummaryFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove previous summary: %w", err)
	}
	for _, name := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile, kalla.SummaryFile} {
		if err := os.Rename(filepath.Join(dir, name), o.Location(name)); err != nil {
			return fmt.Errorf("move %s into place: %w", name, err)
		}
	}
	return os.RemoveAll(dir)
}

// Discard removes the temporary folder.
func (o *Output) Discard(dir string) error { return os.RemoveAll(dir) }
