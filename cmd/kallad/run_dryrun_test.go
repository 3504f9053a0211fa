package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// exampleRulesJob is the bundled example with three rules instead of match_sql:
// an exact one, an exclusive one over both sides and one exclusive on the
// payments only.
func exampleRulesJob(t *testing.T, callbackURL, outputPath string) map[string]any {
	t.Helper()
	job := exampleJob(t, callbackURL, outputPath)
	delete(job, "match_sql")
	job["rules"] = []any{
		map[string]any{"name": "exact_ref", "match_sql": "SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND p.amount = i.amount"},
		map[string]any{"name": "near_amount", "match_sql": "SELECT i.invoice_id, p.payment_id, abs(i.amount - p.amount) AS amount_diff FROM left_src i JOIN right_src p ON tolerance_match(i.amount, p.amount, 1.00)",
			"exclusive": map[string]any{"order_by": []any{"amount_diff"}}},
		map[string]any{"name": "same_payer", "match_sql": "SELECT i.invoice_id, p.payment_id, abs(date_diff('day', i.issued_on, p.paid_on)) AS day_gap FROM left_src i JOIN right_src p ON p.payer = i.customer",
			"exclusive": map[string]any{"sides": []any{"right_src"}, "order_by": []any{"day_gap"}}},
	}
	return job
}

// writeJob writes job as JSON into a new file and returns its path.
func writeJob(t *testing.T, job map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.json")
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameCounts fails t unless a dry run's counts are those of a real run,
// rule by rule (elapsed times aside).
func sameCounts(t *testing.T, dry, real kalla.Result) {
	t.Helper()
	if !dry.DryRun || real.DryRun {
		t.Errorf("dry_run: %v for the dry run, %v for the real one", dry.DryRun, real.DryRun)
	}
	if dry.OutputPaths != (kalla.OutputPaths{}) {
		t.Errorf("the dry run reports output paths %+v", dry.OutputPaths)
	}
	type totals struct{ m, ul, ur, l, r int64 }
	d := totals{dry.MatchedCount, dry.UnmatchedLeftCount, dry.UnmatchedRightCount, dry.LeftCount, dry.RightCount}
	w := totals{real.MatchedCount, real.UnmatchedLeftCount, real.UnmatchedRightCount, real.LeftCount, real.RightCount}
	if d != w {
		t.Errorf("dry run counts %+v, the real run's %+v", d, w)
	}
	if len(dry.Rules) != len(real.Rules) || len(real.Rules) == 0 {
		t.Fatalf("dry run rules %+v, the real run's %+v", dry.Rules, real.Rules)
	}
	for i := range real.Rules {
		a, b := dry.Rules[i], real.Rules[i]
		a.ElapsedMS, b.ElapsedMS = 0, 0
		if a != b {
			t.Errorf("rule %d: dry run %+v, real run %+v", i, a, b)
		}
	}
}

// tree lists the files under dir with their sizes and modification times,
// to tell that nothing in it changed.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%s %s %d", info.ModTime(), info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// `kallad run --dry-run` prints the counts a real run computes, rule by
// rule, without output_paths, and writes nothing: a missing output folder
// is not created, an existing one is left as it was. The flag is accepted
// before or after the job, as the others are.
func TestRunDryRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "never")
	existing := filepath.Join(dir, "kept")
	if err := os.MkdirAll(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(existing, kalla.SummaryFile), []byte(`{"run_id":"earlier"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := tree(t, existing)

	realOut := filepath.Join(dir, "real")
	stdout, stderr, code := kallad(t, dir, "run", writeJob(t, exampleRulesJob(t, "", realOut)))
	if code != 0 {
		t.Fatalf("kallad run: exit %d: %s", code, stderr)
	}
	var real kalla.Result
	if err := json.Unmarshal([]byte(stdout), &real); err != nil {
		t.Fatalf("kallad run printed %q: %v", stdout, err)
	}

	for _, tc := range []struct {
		name string
		out  string
		args func(job string) []string
	}{
		{"flag after the job, no output folder", missing, func(job string) []string { return []string{"run", job, "--dry-run"} }},
		{"flag before the job, an existing output folder", existing, func(job string) []string { return []string{"run", "--dry-run", job} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := kallad(t, dir, tc.args(writeJob(t, exampleRulesJob(t, "", tc.out)))...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Contains(stdout, "output_paths") || !strings.Contains(stdout, `"dry_run": true`) {
				t.Errorf("the payload should say dry_run and have no output_paths:\n%s", stdout)
			}
			var dry kalla.Result
			if err := json.Unmarshal([]byte(stdout), &dry); err != nil {
				t.Fatalf("stdout is not the payload: %v\n%s", err, stdout)
			}
			sameCounts(t, dry, real)
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run created its output folder: %v", err)
	}
	after := tree(t, existing)
	if len(after) != len(before) {
		t.Errorf("the dry run changed the existing output folder: %v, was %v", after, before)
	}
	for p, v := range before {
		if after[p] != v {
			t.Errorf("the dry run changed %s", p)
		}
	}
}

// A dry run reports what only running the rules can tell, as `kallad run`
// does: exit 2 naming the exact field.
func TestRunDryRunInvalidRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	job := exampleRulesJob(t, "", filepath.Join(dir, "out"))
	job["rules"].([]any)[1].(map[string]any)["exclusive"] = map[string]any{"order_by": []any{"amount_gap"}}
	stdout, stderr, code := kallad(t, dir, "run", "--dry-run", writeJob(t, job))
	if code != 2 || stdout != "" || !strings.Contains(stderr, "rules[1].exclusive.order_by[0]") || !strings.Contains(stderr, `"amount_gap"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2 naming rules[1].exclusive.order_by[0]", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused dry run created its output folder: %v", err)
	}
}
