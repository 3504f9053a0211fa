package distributed_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/file"
)

// The layout's keys are those every process agrees on, and StagedFiles
// finds a partition's files across the folders of every stage task of a
// source, all partitions with -1, and names what it missed.
func TestLayoutStagedFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	attempt := distributed.AttemptDir("run-1", "GEN1")
	for _, k := range [][2]string{
		{distributed.RunDir("run-1"), "cluster/run-1"},
		{attempt, "cluster/run-1/GEN1"},
		{distributed.StageDir(attempt, 1, 2), "cluster/run-1/GEN1/stage/1-2"},
		{distributed.MatchDir(attempt, 3), "cluster/run-1/GEN1/match/p3"},
	} {
		if k[0] != k[1] {
			t.Errorf("layout key %q, want %q", k[0], k[1])
		}
	}
	root := t.TempDir()
	st, err := file.NewStaging(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, distributed.AttemptFolders(attempt)...); err != nil {
		t.Fatal(err)
	}
	dirs := []string{distributed.StageDir(attempt, 0, 0), distributed.StageDir(attempt, 0, 1)}
	var all []string
	for _, dir := range dirs {
		for p := range 2 {
			key := dir + "/" + distributed.PartitionFolder(p) + "/data_0.parquet"
			path := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Not a staged file: only Parquet files of a partition count.
			if err := os.WriteFile(filepath.Join(filepath.Dir(path), "notes.txt"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			all = append(all, key)
		}
	}
	got, err := distributed.StagedFiles(ctx, st, dirs, 1)
	if want := []string{all[1], all[3]}; err != nil || !slices.Equal(got, want) {
		t.Errorf("partition 1: %q, %v; want %q", got, err, want)
	}
	got, err = distributed.StagedFiles(ctx, st, dirs, -1)
	if err != nil || !slices.Equal(got, all) {
		t.Errorf("every partition: %q, %v; want %q", got, err, all)
	}
	_, err = distributed.StagedFiles(ctx, st, dirs, 2)
	if err == nil || !strings.Contains(err.Error(), dirs[0]+"/p2/*.parquet") {
		t.Errorf("a missing partition: %v; want an error naming the pattern", err)
	}
}
