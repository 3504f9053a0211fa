package distributed

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strconv"

	"github.com/kalla-dev/kalla"
)

// The functions below name every folder of the staging layout (see the
// package doc); nothing else builds those names.

// RunDir is the folder of every attempt of runID.
func RunDir(runID string) string { return path.Join("cluster", runID) }

// AttemptDir is the folder of attempt gen of runID; every key a task of that
// attempt names lies below it.
func AttemptDir(runID, gen string) string { return path.Join(RunDir(runID), gen) }

// AttemptFolders are the folders a coordinator creates for an attempt
// before it issues tasks: the attempt's and the parents of its tasks'.
func AttemptFolders(attempt string) []string {
	return []string{attempt, path.Join(attempt, "stage"), path.Join(attempt, "match")}
}

// StageDir is the folder of stage task k of source side.
func StageDir(attempt string, side, k int) string {
	return path.Join(attempt, "stage", fmt.Sprintf("%d-%d", side, k))
}

// MatchDir is the folder of the match task of partition p.
func MatchDir(attempt string, p int) string {
	return path.Join(attempt, "match", PartitionFolder(p))
}

// matchResults are the keys of the partial results of the match task
// writing to dir: matched, and unmatched per side.
func matchResults(dir string) (matched string, unmatched [2]string) {
	return path.Join(dir, kalla.MatchedFile),
		[2]string{path.Join(dir, kalla.UnmatchedLeftFile), path.Join(dir, kalla.UnmatchedRightFile)}
}

// PartitionFolder is the name of the folder, inside a stage task's folder,
// holding partition p of what the task staged (see Session.WritePartitions).
func PartitionFolder(p int) string { return "p" + strconv.Itoa(p) }

// partitionPattern is the path.Match pattern of the staged files of
// partition p under the folder dir, or of every partition when p is
// negative.
func partitionPattern(dir string, p int) string {
	folder := "p*"
	if p >= 0 {
		folder = PartitionFolder(p)
	}
	return path.Join(filepath.ToSlash(dir), folder, "*.parquet")
}

// StagedFiles lists the keys of the staged Parquet files of partition p of
// a source staged by the stage tasks writing to the folders dirs of st, or
// of every partition when p is negative.
func StagedFiles(ctx context.Context, st Staging, dirs []string, p int) ([]string, error) {
	var files []string
	for _, dir := range dirs {
		pattern := partitionPattern(dir, p)
		listed := dir
		if p >= 0 {
			listed = path.Dir(pattern)
		}
		keys, err := st.List(ctx, listed)
		if err != nil {
			return nil, fmt.Errorf("list staged files of %s: %w", dir, err)
		}
		n := len(files)
		for _, k := range keys {
			if ok, _ := path.Match(pattern, k); ok {
				files = append(files, k)
			}
		}
		if len(files) == n {
			return nil, fmt.Errorf("no staged files match %s in %s", pattern, st)
		}
	}
	return files, nil
}
