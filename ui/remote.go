package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kalla-dev/kalla"
)

// Fetcher copies files of a result folder that is not on this host (an
// s3://bucket/prefix output_path): Fetch downloads the files names of the
// folder uri below scratch and returns the local folder that holds them.
type Fetcher func(ctx context.Context, uri string, names []string, scratch string) (string, error)

// maxCopies is how many runs' results on S3 the console keeps copies of;
// the least recently opened copy is removed first.
const maxCopies = 8

// copies are the local copies of results on S3, by run id. Each run has
// its own lock, so a page waits for its run's download only.
type copies struct {
	fetch Fetcher
	root  string
	mu    sync.Mutex
	runs  map[string]*runCopy
	clock int64
}

// runCopy is one run's local copy.
type runCopy struct {
	mu   sync.Mutex
	dir  string // "" until fetched
	used int64
}

func newCopies(fetch Fetcher, tempDir string) (*copies, error) {
	if fetch == nil {
		return nil, nil
	}
	root, err := os.MkdirTemp(tempDir, "kalla-console-")
	if err != nil {
		return nil, fmt.Errorf("create the console's folder for results on S3: %w", err)
	}
	return &copies{fetch: fetch, root: root, runs: map[string]*runCopy{}}, nil
}

// close removes every copy.
func (c *copies) close() error {
	if c == nil {
		return nil
	}
	return os.RemoveAll(c.root)
}

// local returns the folder of a local copy of run's result on S3 (folder
// uri, files names), or why there is none. summary.json is read from S3
// every time: a later run publishing to the same prefix replaces it, and
// the copy is then not shown as this run's.
func (c *copies) local(ctx context.Context, runID, uri string, names []string) (string, string) {
	c.mu.Lock()
	rc, ok := c.runs[runID]
	if !ok {
		rc = &runCopy{}
		c.runs[runID] = rc
	}
	c.clock++
	rc.used = c.clock
	c.evict()
	c.mu.Unlock()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	scratch := filepath.Join(c.root, runID)
	sumDir, err := c.fetch(ctx, uri, []string{kalla.SummaryFile}, filepath.Join(scratch, "summary"))
	if err != nil {
		return "", "The result's summary.json could not be read from " + uri + ": " + err.Error()
	}
	if note := checkSummary(filepath.Join(sumDir, kalla.SummaryFile), runID); note != "" {
		return "", note
	}
	if rc.dir != "" {
		return rc.dir, ""
	}
	if len(names) == 0 {
		return "", "The result lists no files."
	}
	dir, err := c.fetch(ctx, uri, names, filepath.Join(scratch, "files"))
	if err != nil {
		return "", "The result files could not be copied from " + uri + ": " + err.Error()
	}
	rc.dir = dir
	return dir, ""
}

// evict removes the least recently opened copies beyond maxCopies; the
// caller holds c.mu.
func (c *copies) evict() {
	for len(c.runs) > maxCopies {
		var oldest string
		for id, rc := range c.runs {
			if oldest == "" || rc.used < c.runs[oldest].used {
				oldest = id
			}
		}
		rc := c.runs[oldest]
		delete(c.runs, oldest)
		go func() {
			// Once a page reading it is done.
			rc.mu.Lock()
			defer rc.mu.Unlock()
			os.RemoveAll(filepath.Join(c.root, oldest))
		}()
	}
}

// checkSummary says why the summary.json at path is not runID's, or "".
func checkSummary(path, runID string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "The result folder has no summary.json: a later run is publishing to it, or the files were removed."
	}
	var sum struct {
		RunID string `json:"run_id"`
	}
	if json.Unmarshal(raw, &sum) != nil {
		return "The result folder's summary.json is not readable."
	}
	if sum.RunID != runID {
		return "The result folder now holds the result of run " + sum.RunID + ", which wrote to the same output_path later."
	}
	return ""
}

// remoteNames are the Parquet files of a result on S3, from its output
// paths (suggested.parquet when the result lists it).
func remoteNames(result json.RawMessage) []string {
	var r struct {
		OutputPaths map[string]string `json:"output_paths"`
	}
	_ = json.Unmarshal(result, &r)
	var names []string
	for _, f := range resultFiles {
		if p, ok := r.OutputPaths[f]; ok && strings.HasSuffix(p, "/"+f+".parquet") {
			names = append(names, f+".parquet")
		}
	}
	return names
}
