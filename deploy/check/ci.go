package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// testCommand is the README's test command, which CI runs.
const testCommand = "bash scripts/test.sh"

// workflow is the part of a GitHub Actions workflow that checkWorkflow reads.
// YAML 1.2 (yaml/v4): the key `on` stays a string, where YAML 1.1 readers
// make it the boolean true.
type workflow struct {
	On   any `yaml:"on"`
	Jobs map[string]struct {
		RunsOn any `yaml:"runs-on"`
		Steps  []struct {
			Uses string         `yaml:"uses"`
			Run  string         `yaml:"run"`
			With map[string]any `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// checkWorkflow checks the CI workflow: it has triggers, and a job on an
// Ubuntu runner checks the code out, sets Go up from go.mod with its module
// and build caches, and runs the README's test command.
func checkWorkflow(file, readme string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("workflow: %w", err)
	}
	var wf workflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		return fmt.Errorf("workflow %s: %w", file, err)
	}
	if text, err := os.ReadFile(readme); err != nil || !strings.Contains(string(text), testCommand) {
		return fmt.Errorf("workflow %s: %s does not give the test command %q (%v)", file, readme, testCommand, err)
	}
	var errs []error
	if wf.On == nil {
		errs = append(errs, fmt.Errorf("workflow %s: no triggers (on)", file))
	}
	for _, name := range sortedKeys(wf.Jobs) {
		job := wf.Jobs[name]
		runner, _ := job.RunsOn.(string)
		checkout, goSetup, tests := false, false, false
		for _, st := range job.Steps {
			switch action, _, _ := strings.Cut(st.Uses, "@"); {
			case action == "actions/checkout":
				checkout = true
			case action == "actions/setup-go":
				if st.With["go-version-file"] != "go.mod" {
					errs = append(errs, fmt.Errorf("workflow %s: job %s: setup-go takes Go from %v, want go-version-file: go.mod", file, name, st.With["go-version-file"]))
				}
				if st.With["cache"] == false {
					errs = append(errs, fmt.Errorf("workflow %s: job %s: setup-go's module and build caches are off", file, name))
				}
				goSetup = checkout
			case strings.TrimSpace(st.Run) == testCommand:
				tests = goSetup
			}
		}
		if strings.HasPrefix(runner, "ubuntu") && tests {
			return errors.Join(errs...)
		}
	}
	return errors.Join(append(errs, fmt.Errorf("workflow %s: no job on an ubuntu runner that checks out, sets up Go (actions/setup-go) and then runs %q", file, testCommand))...)
}
