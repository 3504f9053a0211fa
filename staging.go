package kalla

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
)

// Staging is where the tasks of a distributed job exchange files: staged
// partitions and partial results. It is a folder every process shares
// (file.Staging) or an object store prefix (s3.Staging), and the same on the
// scheduler and every executor.
//
// Keys are paths relative to the staging root, such as
// "cluster/<run>/<attempt>/stage/0"; they are slash-separated
// (filepath.ToSlash is applied to them). A key names a folder or a file.
//
// The scheduler only calls Create, Exists, List and RemoveAll, which move no
// file contents. Executors run tasks on local files: Fetch gives them local
// copies of staged files, Output a local folder to write into, and Publish
// makes that folder's files visible to the other processes.
type Staging interface {
	// Create makes the folders keys. Exists reports a folder made by Create
	// until RemoveAll removes it.
	Create(ctx context.Context, keys ...string) error
	// Exists reports whether the folder key, made by Create, still exists.
	Exists(ctx context.Context, key string) (bool, error)
	// List returns the keys of the files below the folder key, sorted; none
	// when it does not exist.
	List(ctx context.Context, key string) ([]string, error)
	// RemoveAll removes the folder key and everything below it. A missing
	// folder is not an error.
	RemoveAll(ctx context.Context, key string) error
	// Fetch returns local paths of the files keys, in their order: the files
	// themselves when the staging is local, else copies downloaded below
	// scratch, a folder of the caller's that it removes when done.
	Fetch(ctx context.Context, keys []string, scratch string) ([]string, error)
	// Output returns the local folder where a task writes what it stages
	// under key. Its parent exists; the folder itself may not, and the task
	// creates it (a task that finds the parent gone stops).
	Output(ctx context.Context, key, scratch string) (string, error)
	// Publish makes the files written in local, a folder Output returned
	// for key, visible under key, replacing what key held before.
	Publish(ctx context.Context, local, key string) error
	// String describes the staging for logs: a path or an s3:// URI.
	String() string
}

// partitionPattern is the pattern (a path.Match one, for keys and on Unix
// for file paths alike) of the staged files of partition p of a source
// staged in dir, or of every partition when p is negative.
func partitionPattern(dir string, p int) string {
	if p < 0 {
		return path.Join(filepath.ToSlash(dir), "p*", "*.parquet")
	}
	return path.Join(filepath.ToSlash(dir), fmt.Sprintf("p%d", p), "*.parquet")
}

// StagedFiles lists the keys of the staged Parquet files of partition p of
// a source staged under the folder key dir of st, or of every partition
// when p is negative.
func StagedFiles(ctx context.Context, st Staging, dir string, p int) ([]string, error) {
	pattern := partitionPattern(dir, p)
	listed := dir
	if p >= 0 {
		listed = path.Dir(pattern)
	}
	keys, err := st.List(ctx, listed)
	if err != nil {
		return nil, fmt.Errorf("list staged files of %s: %w", dir, err)
	}
	var files []string
	for _, k := range keys {
		if ok, _ := path.Match(pattern, k); ok {
			files = append(files, k)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no staged files match %s in %s", pattern, st)
	}
	return files, nil
}
