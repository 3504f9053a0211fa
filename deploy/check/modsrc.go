package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// The sources of the schemas, fetched as Go modules through the module proxy
// (and checked against the checksum database) into the module cache, so
// nothing large is kept in the repository.
const (
	// kubernetesModule ships api/openapi-spec/swagger.json, the spec the
	// kubernetes-json-schema files kubeconform uses by default are made from.
	kubernetesModule = "k8s.io/kubernetes@v1.34.4"
	// kedaModule ships the ScaledObject CRD (config/crd/bases).
	kedaModule = "github.com/kedacore/keda/v2@v2.21.0"
)

// moduleDir downloads a module (path@version) into the module cache, unless
// it is there already, and returns its directory.
func moduleDir(ctx context.Context, module string) (string, error) {
	// Run outside any module so that no go.mod or go.sum is read or touched.
	dir, err := os.MkdirTemp("", "kalla-check-")
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &res); jerr == nil && res.Error != "" {
		return "", fmt.Errorf("go mod download %s: %s", module, res.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w: %s", module, err, stderr.Bytes())
	}
	if res.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no directory in %q", module, out)
	}
	return res.Dir, nil
}
