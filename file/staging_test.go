package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/file"
)

// A shared staging folder: tasks read and write in place, keys map to
// paths below the folder, and a task cannot recreate a removed job folder.
func TestStagingFolder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	st, err := file.NewStaging("file://" + base)
	if err != nil {
		t.Fatal(err)
	}
	if st.String() != base {
		t.Errorf("String() = %q, want %q", st.String(), base)
	}
	root := "cluster/run1/gen1"
	if err := st.Create(ctx, root, root+"/stage"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Exists(ctx, root); !ok || err != nil {
		t.Errorf("Exists(root) = %v, %v", ok, err)
	}
	out, err := st.Output(ctx, root+"/stage/0", t.TempDir())
	if err != nil || out != filepath.Join(base, "cluster", "run1", "gen1", "stage", "0") {
		t.Fatalf("Output = %q, %v: want the folder itself", out, err)
	}
	for _, f := range []string{"p1/a.parquet", "p10/b.parquet", "p1/c.parquet"} {
		p := filepath.Join(out, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Publish(ctx, out, root+"/stage/0"); err != nil {
		t.Fatal(err)
	}
	keys, err := distributed.StagedFiles(ctx, st, []string{root + "/stage/0"}, 1)
	if err != nil || strings.Join(keys, " ") != root+"/stage/0/p1/a.parquet "+root+"/stage/0/p1/c.parquet" {
		t.Errorf("partition 1: %q, %v", keys, err)
	}
	paths, err := st.Fetch(ctx, keys, t.TempDir())
	if err != nil || paths[0] != filepath.Join(out, "p1", "a.parquet") {
		t.Errorf("Fetch = %q, %v: want the files themselves", paths, err)
	}
	if keys, err := st.List(ctx, "cluster/nothing"); len(keys) != 0 || err != nil {
		t.Errorf("List of a missing folder = %q, %v", keys, err)
	}

	if err := st.RemoveAll(ctx, "cluster/run1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Exists(ctx, root); ok || err != nil {
		t.Errorf("Exists after RemoveAll = %v, %v", ok, err)
	}
	out, err = st.Output(ctx, root+"/match/p0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(out, 0o755); err == nil {
		t.Errorf("a task recreated the removed job folder at %s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "cluster")); len(entries) != 0 {
		t.Errorf("left in the staging folder: %v", entries)
	}
}

// A job's folder is removed while one of its tasks still writes files in
// it, as a task does until its next heartbeat sees the folder gone: the
// removal must not give up with "directory not empty".
func TestStagingRemoveAllWhileWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := file.NewStaging(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		root := fmt.Sprintf("cluster/run%d", round)
		if err := st.Create(ctx, root, root+"/match"); err != nil {
			t.Fatal(err)
		}
		dir, err := st.Output(ctx, root+"/match", "")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan int)
		go func() {
			n := 0
			// Like a task: it writes into its folder and never recreates it.
			for os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.parquet", n)), []byte("x"), 0o644) == nil {
				n++
			}
			done <- n
		}()
		for {
			if entries, _ := os.ReadDir(dir); len(entries) >= 50 {
				break
			}
		}
		if err := st.RemoveAll(ctx, root); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		<-done
		if ok, err := st.Exists(ctx, root); ok || err != nil {
			t.Fatalf("round %d: the folder is still there (%v)", round, err)
		}
	}
}
