package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
)

// A confirmed file outside KALLA_ALLOW_PATHS is refused at submission
// with a 400 naming the field `confirmed`; inside, the job runs.
func TestConfirmedOutsideAllowedPaths(t *testing.T) {
	t.Parallel()
	allowed, outside := t.TempDir(), t.TempDir()
	inv, pay := writePlanted(t, allowed, "csv")
	body := []byte("id,pid\nI4,P5\n")
	for _, dir := range []string{allowed, outside} {
		if err := os.WriteFile(filepath.Join(dir, "confirmed.csv"), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sched := startSchedulerArgs(t, t.TempDir(), []string{"--allow-paths", allowed})
	job := func(confirmed string) map[string]any {
		j := plantedJob(t, suggestRules, inv, pay, "")
		j["output_path"] = filepath.Join(allowed, "out")
		j["confirmed"] = confirmed
		return j
	}
	refused(t, sched, "confirmed outside", job(filepath.Join(outside, "confirmed.csv")), "confirmed", "KALLA_ALLOW_PATHS")
	refused(t, sched, "confirmed URI outside", job("file://"+filepath.Join(outside, "confirmed.csv")), "confirmed", "KALLA_ALLOW_PATHS")
	ok := job(filepath.Join(allowed, "confirmed.csv"))
	if code, body := sched.submit(t, ok); code != 202 {
		t.Fatalf("allowed job: %d %s", code, body)
	}
	if v := sched.waitState(t, ok["run_id"].(string), kalla.JobCompleted); v.Result == nil || v.Result.Rules[0].Matched != 1 {
		t.Errorf("allowed job result %+v, want one confirmed pair", v.Result)
	}
}
