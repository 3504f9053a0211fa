package main

import (
	"path/filepath"
	"testing"
)

// A CI workflow that does not run the README's tests with Go from go.mod
// and its caches is refused.
func TestWorkflowRejects(t *testing.T) {
	const ci = ".github/workflows/ci.yml"
	readme := filepath.Join("..", "..", "README.md")
	for _, m := range []mutation{
		{"not YAML", ci, []string{"jobs:", "jobs: ["}, "workflow"},
		{"no triggers", ci, []string{"on:\n  push:\n    branches: [main]\n  pull_request:\n", ""}, "no triggers"},
		{"another test command", ci, []string{"run: bash scripts/test.sh", "run: go test ./..."}, `then runs "bash scripts/test.sh"`},
		{"not on ubuntu", ci, []string{"runs-on: ubuntu-24.04", "runs-on: macos-14"}, "no job on an ubuntu runner"},
		{"no checkout", ci, []string{"- uses: actions/checkout@v4\n      ", ""}, "checks out"},
		{"Go version not from go.mod", ci, []string{"go-version-file: go.mod", "go-version: '1.22'"}, "want go-version-file: go.mod"},
		{"caches off", ci, []string{"cache: true", "cache: false"}, "module and build caches are off"},
		{"no setup-go", ci, []string{"- uses: actions/setup-go@v5", "- uses: actions/setup-node@v4"}, "sets up Go"},
	} {
		t.Run(m.name, func(t *testing.T) {
			wantError(t, checkWorkflow(m.write(t, t.TempDir()), readme), m.want)
		})
	}
	if err := checkWorkflow(filepath.Join("..", "..", ci), filepath.Join("..", "..", "go.mod")); err == nil {
		t.Errorf("a README without the test command was accepted")
	}
}
