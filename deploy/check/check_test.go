package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaDir holds the schemas every test validates against, written once.
var schemaDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kalla-schemas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := writeSchemas(context.Background(), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	schemaDir = dir
	return m.Run()
}

// The repository's compose files and manifests are valid, and every one of
// them was checked.
func TestRepositoryFiles(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), "../..", schemaDir, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"ok ../../Dockerfile\n",
		"ok ../../.github/workflows/ci.yml\n",
		"docker-compose.single.yml: services postgres, scheduler",
		"docker-compose.cluster.yml: services executor, minio, minio-init, postgres, scheduler",
		"executor.yaml: Deployment",
		"keda-scaledobject.yaml: ScaledObject",
		"scheduler.yaml: PersistentVolumeClaim, Deployment, Service",
		"staging-pvc.yaml: PersistentVolumeClaim",
		"ok references between the 6 objects",
		"ok probes and KEDA triggers of deploy/k8s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// mutation is a broken copy of one of the repository's files: each old
// string is replaced by its new one, and checking the copy must fail with an
// error containing want.
type mutation struct {
	name, file string
	edits      []string // old, new, old, new, ...
	want       string
}

// write writes the mutated file into dir and returns its path.
func (m mutation) write(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", m.file))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for i := 0; i+1 < len(m.edits); i += 2 {
		if !strings.Contains(text, m.edits[i]) {
			t.Fatalf("%s lacks %q", m.file, m.edits[i])
		}
		text = strings.Replace(text, m.edits[i], m.edits[i+1], 1)
	}
	path := filepath.Join(dir, filepath.Base(m.file))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want one containing %q", err, want)
	}
	t.Log(err)
}
