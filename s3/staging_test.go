package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/internal/kallatest"
	"github.com/kalla-dev/kalla/s3"
)

// writeTree writes files (relative path → content) below dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A job's life on an S3 staging prefix: the coordinator creates the
// attempt's folders, a stage task publishes its partitions (a retry replaces
// them), a match task lists and fetches one partition, and removing the
// run's folder deletes every object, markers included.
func TestStagingLifecycle(t *testing.T) {
	t.Parallel()
	// Parts of 5 MiB: the large file goes up in a multipart upload.
	c, b := setup(t, s3.Config{PartSize: 5 << 20, RangeSize: 1 << 20})
	ctx := context.Background()
	st, err := c.OpenStaging("s3://data/staging/")
	if err != nil {
		t.Fatal(err)
	}
	if st.String() != "s3://data/staging" {
		t.Errorf("String() = %q", st.String())
	}
	root := "cluster/run1/gen1"
	if err := st.Create(ctx, root, root+"/stage"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{root: true, root + "/stage": true, "cluster/run1/gen2": false, "cluster/run1": false} {
		if got, err := st.Exists(ctx, key); err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", key, got, err, want)
		}
	}

	stageKey := root + "/stage/0"
	publish := func(files map[string]string) {
		t.Helper()
		dir, err := st.Output(ctx, stageKey, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		// The task creates the folder itself: its parent must exist.
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeTree(t, dir, files)
		if err := st.Publish(ctx, dir, stageKey); err != nil {
			t.Fatal(err)
		}
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 12<<16) // 12 MiB
	publish(map[string]string{"p0/data_0.parquet": "zero", "p1/data_0.parquet": "one", "p10/data_0.parquet": string(large), "p1/old.parquet": "stale"})
	publish(map[string]string{"p0/data_0.parquet": "zero", "p1/data_0.parquet": "one", "p1/data_1.parquet": "one more", "p10/data_0.parquet": string(large)})
	want := []string{
		"staging/cluster/run1/gen1/.kalla-folder",
		"staging/cluster/run1/gen1/stage/.kalla-folder",
		"staging/cluster/run1/gen1/stage/0/p0/data_0.parquet",
		"staging/cluster/run1/gen1/stage/0/p1/data_0.parquet",
		"staging/cluster/run1/gen1/stage/0/p1/data_1.parquet",
		"staging/cluster/run1/gen1/stage/0/p10/data_0.parquet",
	}
	if got := b.srv.Keys(t, "data", ""); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objects after the second publish:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := countOps(b.srv)["CreateMultipartUpload"]; n != 2 {
		t.Errorf("%d multipart uploads, want one per publish of the 12 MiB file", n)
	}

	// Partition 1 is p1's files, not p10's; every partition is all of them.
	files, err := distributed.StagedFiles(ctx, st, []string{stageKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(files, " ") != stageKey+"/p1/data_0.parquet "+stageKey+"/p1/data_1.parquet" {
		t.Errorf("partition 1: %q", files)
	}
	all, err := distributed.StagedFiles(ctx, st, []string{stageKey}, -1)
	if err != nil || len(all) != 4 {
		t.Errorf("every partition: %q, %v", all, err)
	}
	if _, err := distributed.StagedFiles(ctx, st, []string{stageKey}, 2); err == nil || !strings.Contains(err.Error(), "s3://data/staging") {
		t.Errorf("missing partition: %v", err)
	}

	scratch := t.TempDir()
	paths, err := st.Fetch(ctx, append(files, stageKey+"/p10/data_0.parquet"), scratch)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"one", "one more", string(large)} {
		got, err := os.ReadFile(paths[i])
		if err != nil || string(got) != want {
			t.Errorf("fetched %s: %d bytes, %v; want %d bytes", paths[i], len(got), err, len(want))
		}
		if !strings.HasPrefix(paths[i], scratch) {
			t.Errorf("fetched %s outside the scratch folder %s", paths[i], scratch)
		}
	}

	if err := st.RemoveAll(ctx, "cluster/run1"); err != nil {
		t.Fatal(err)
	}
	if got := b.srv.Keys(t, "data", ""); len(got) != 0 {
		t.Errorf("objects left after RemoveAll: %q", got)
	}
	if ok, err := st.Exists(ctx, root); ok || err != nil {
		t.Errorf("Exists after RemoveAll = %v, %v", ok, err)
	}
	if err := st.RemoveAll(ctx, "cluster/run1"); err != nil {
		t.Errorf("RemoveAll of a removed folder: %v", err)
	}
	if strings.Contains(b.logs.String(), b.srv.SecretAccessKey) {
		t.Errorf("the secret key is in the logs")
	}
}

// RemoveAll deletes a folder of more keys than one listing page and one
// DeleteObjects request hold, and only that folder.
func TestStagingRemoveAllManyKeys(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	ctx := context.Background()
	st, err := c.OpenStaging("s3://data")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1001 {
		b.srv.Put(t, "data", fmt.Sprintf("cluster/r/p%d/f.parquet", i), []byte("x"))
	}
	b.srv.Put(t, "data", "cluster/r2/keep.parquet", []byte("x"))
	if err := st.RemoveAll(ctx, "cluster/r"); err != nil {
		t.Fatal(err)
	}
	if got := b.srv.Keys(t, "data", ""); len(got) != 1 || got[0] != "cluster/r2/keep.parquet" {
		t.Errorf("left: %d keys %.200q", len(got), got)
	}
	deletes := 0
	for _, r := range b.srv.Requests() {
		if r.Method == http.MethodPost && r.Query.Has("delete") {
			deletes++
		}
	}
	if deletes != 2 {
		t.Errorf("%d DeleteObjects requests for 1001 keys, want 2", deletes)
	}
}

// Staging failures name the key and what was being done, are not
// validation errors (they are not the job's fault), and hold no secret.
func TestStagingErrors(t *testing.T) {
	t.Parallel()
	c, b := setup(t, s3.Config{})
	ctx := context.Background()
	for _, uri := range []string{"s3://", "s3://AKIAXXX:topsecret@bucket/x", "s3://bucket/a*"} {
		if _, err := c.OpenStaging(uri); err == nil || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("OpenStaging(%q) = %v", uri, err)
		}
	}
	missing, err := c.OpenStaging("s3://no-such-bucket/staging")
	if err != nil {
		t.Fatal(err)
	}
	err = missing.Create(ctx, "cluster/r/g")
	if err == nil || kalla.IsValidation(err) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist (write s3://no-such-bucket/staging/cluster/r/g/.kalla-folder)`) {
		t.Errorf("Create in a missing bucket: %v", err)
	}

	st, err := c.OpenStaging("s3://data/staging")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	writeTree(t, dir, map[string]string{"p0/a.parquet": "a"})
	b.srv.DenyRequests(func(r kallatest.S3Request) bool { return r.Op() == "PutObject" })
	err = st.Publish(ctx, dir, "cluster/r/g/stage/0")
	if err == nil || kalla.IsValidation(err) || !strings.Contains(err.Error(), "s3://data/staging/cluster/r/g/stage/0/p0/a.parquet") ||
		!strings.Contains(err.Error(), "s3:PutObject") {
		t.Errorf("Publish denied: %v", err)
	}
	b.srv.DenyRequests(nil)
	_, err = st.Fetch(ctx, []string{"cluster/r/g/stage/0/p0/gone.parquet"}, t.TempDir())
	if err == nil || kalla.IsValidation(err) || !strings.Contains(err.Error(), "s3://data/staging/cluster/r/g/stage/0/p0/gone.parquet") {
		t.Errorf("Fetch of a missing key: %v", err)
	}

	// Credentials the store rejects.
	wrong := b.srv.Config()
	wrong.Credentials = credentials.NewStaticCredentialsProvider("AKIAWRONGWRONGWRONG", "wrong-secret-key-material", "")
	bad, err := s3.New(s3.Config{AWS: &wrong}).OpenStaging("s3://data/staging")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.List(ctx, "cluster/r/g")
	if !errors.Is(err, s3.ErrCredentials) || strings.Contains(err.Error(), "wrong-secret") || !strings.Contains(err.Error(), "s3://data/staging/cluster/r/g/") {
		t.Errorf("List with rejected credentials: %v", err)
	}
	if strings.Contains(b.logs.String(), b.srv.SecretAccessKey) {
		t.Errorf("the secret key is in the logs")
	}
}
