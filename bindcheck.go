package kalla

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CheckBind binds job against its sources' columns, reading no rows, so
// that the errors a run would report when it starts (a rule's result
// without a primary key, an order_by column the rule does not return, two
// rules typing one column apart, a filter or primary key naming a missing
// column, a rule that cannot be explained) are reported at submission,
// naming the field. srcs are the sources Prepare opened; the caller closes
// them.
//
// Only the columns are read (SchemaOnly: Parquet footers, a Postgres
// catalog query, S3 as its source reads it), and a local CSV file larger
// than csvSampleBytes is typed from its first csvSampleBytes: a full scan
// would cost a submission as much as staging the file. A column the sample
// types narrower than the whole file (a late non-numeric value) could make
// a valid job fail to bind, so a validation error found on a sample is
// checked again on the whole files before it is returned. An error that is
// not a *ValidationError (a source that cannot be reached, ctx ending)
// says nothing about the job; the caller decides.
func (r *Runner) CheckBind(ctx context.Context, job *Job, srcs [2]Source) error {
	sampled := srcs
	sampling := false
	for i, src := range srcs {
		if fs := src.Local(); fs != nil && fs.Format == FormatCSV {
			sampled[i], sampling = &csvSample{Source: src}, true
		}
	}
	err := r.bindSchemas(ctx, job, srcs, sampled)
	if err == nil || !sampling || !IsValidation(err) || ctx.Err() != nil {
		return err
	}
	for _, src := range sampled {
		if s, ok := src.(*csvSample); ok && s.cut {
			// The sample decided a type: only the whole files can say
			// whether the job is wrong.
			return r.bindSchemas(ctx, job, srcs, srcs)
		}
	}
	return err
}

// bindSchemas binds job in a session of its own that may read the files of
// allowed, attaching read in their place.
func (r *Runner) bindSchemas(ctx context.Context, job *Job, allowed, read [2]Source) error {
	sess, err := r.NewSession(ctx, allowed[:], CarryPaths(job)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	_, err = r.Bind(ctx, sess, job, read, SchemaOnly)
	return err
}

// csvSampleBytes is how much of a local CSV file CheckBind types a job's
// columns from: about the 20,480 rows DuckDB's sniffer looks at, for rows
// of 50 bytes. Typing costs about its size (BenchmarkSubmitBind: a 4 MiB
// sample of a 7 MB file took 0.8 s of the whole file's 1.4 s on a busy
// 2-core machine), so it is kept small; a type the sample gets wrong costs
// only a second, whole binding of a job that failed on it.
var csvSampleBytes int64 = 1 << 20

// csvSample is a local CSV source read, for its columns, through a copy of
// the head of its first file cut at a row boundary.
type csvSample struct {
	Source
	// cut is set once Read has handed out a sample shorter than the file.
	cut bool
}

// Read implements Source: for SchemaOnly, the head of the first file of
// the source when that file is larger than csvSampleBytes and a row
// boundary can be found in it; otherwise the source's own reading.
func (s *csvSample) Read(ctx context.Context, split SourceSplit, dir string) (Reading, error) {
	rd, err := s.Source.Read(ctx, split, dir)
	if err != nil || !split.Schema || rd.Files == nil || rd.Files.Format != FormatCSV {
		return rd, err
	}
	first, err := firstFile(rd.Files.Pattern)
	if err != nil || first == "" || !strings.EqualFold(filepath.Ext(first), ".csv") {
		// A compressed file cannot be cut; a missing one is the engine's
		// to report.
		return rd, nil
	}
	head, ok, err := csvHead(first, csvSampleBytes)
	if err != nil || !ok {
		return rd, nil
	}
	path := filepath.Join(dir, "sample.csv")
	if err := os.WriteFile(path, head, 0o600); err != nil {
		return Reading{}, fmt.Errorf("write a sample of %s: %w", first, err)
	}
	s.cut = true
	return Reading{Files: &FileSource{Pattern: path, Format: FormatCSV}}, nil
}

// firstFile is the file DuckDB reads first for pattern: pattern itself, or
// the first of its glob's matches in name order.
func firstFile(pattern string) (string, error) {
	if !strings.ContainsAny(pattern, "*?[") {
		return pattern, nil
	}
	matches, err := filepath.Glob(pattern)
	if err != nil || len(matches) == 0 {
		return "", err
	}
	return matches[0], nil // Glob sorts them
}

// csvHead reads the first max bytes of the CSV file at path and cuts them
// after the last line break outside a quoted field (an even count of
// double quotes before it: "" escapes count twice). ok is false when the
// file is no larger than max (it is its own sample) or holds no such
// break.
func csvHead(path string, max int64) (head []byte, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	buf := make([]byte, max+1)
	n, err := io.ReadFull(f, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	buf = buf[:n-1]
	end, quotes := -1, 0
	for i, c := range buf {
		switch c {
		case '"':
			quotes++
		case '\n':
			if quotes%2 == 0 {
				end = i
			}
		}
	}
	// A header and at least one row.
	if end < 0 || bytes.Count(buf[:end], []byte{'\n'}) < 1 {
		return nil, false, nil
	}
	return buf[:end+1], true, nil
}
