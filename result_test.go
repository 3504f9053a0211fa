package kalla_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// A dry run's payload has no output_paths (it wrote no file); a run's has
// them, as the seed's clients expect.
func TestResultOutputPathsOnlyWhenWritten(t *testing.T) {
	t.Parallel()
	dry, err := json.Marshal(kalla.Result{RunID: "r", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dry), "output_paths") || !strings.Contains(string(dry), `"dry_run":true`) {
		t.Errorf("dry run payload: %s", dry)
	}
	run, err := json.Marshal(kalla.Result{RunID: "r", OutputPaths: kalla.OutputPaths{Matched: "/o/matched.parquet"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(run), `"output_paths":{"matched":"/o/matched.parquet"`) || strings.Contains(string(run), "dry_run") {
		t.Errorf("run payload: %s", run)
	}
}
