package distributed

import "context"

// Staging is where the tasks of a distributed job exchange files: staged
// partitions and partial results. It is a folder every process shares
// (file.Staging) or an object store prefix (s3.Staging), and the same on the
// scheduler and every executor.
//
// Keys are paths relative to the staging root (layout.go names them); they
// are slash-separated (filepath.ToSlash is applied to them). A key names a
// folder or a file.
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
