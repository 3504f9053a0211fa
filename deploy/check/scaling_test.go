package main

import (
	"path/filepath"
	"testing"
)

// Probes on the wrong endpoint, and KEDA triggers that would never fire or
// that KEDA refuses, fail.
func TestScalingReject(t *testing.T) {
	const executor, scheduler, keda = "deploy/k8s/executor.yaml", "deploy/k8s/scheduler.yaml", "deploy/k8s/keda-scaledobject.yaml"
	c, err := newManifestChecker(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	for _, m := range []mutation{
		{"scheduler readiness on /health", scheduler, []string{"httpGet: {path: /ready, port: http}", "httpGet: {path: /health, port: http}"},
			`Deployment kalla-scheduler: container kallad's readiness probe asks "/health", want /ready`},
		{"scheduler liveness on /ready", scheduler, []string{"httpGet: {path: /health, port: http}", "httpGet: {path: /ready, port: http}"},
			`liveness probe asks "/ready", want /health`},
		{"executor without readiness probe", executor, []string{"          readinessProbe:\n            httpGet: {path: /ready, port: probes}\n            periodSeconds: 5\n", ""},
			"Deployment kalla-executor: container kallad has no HTTP readiness probe (want GET /ready)"},
		{"query names a metric kallad does not serve", keda, []string{"query: max(kallad_executor_demand)", "query: max(kallad_executors_demand)"},
			"query names kallad_executors_demand, which kallad does not serve"},
		{"query names no kallad metric", keda, []string{"query: max(kallad_executor_demand)", "query: max(up)"}, "names no kallad_ metric"},
		{"query not aggregated", keda, []string{"query: max(kallad_executor_demand)", "query: kallad_executor_demand"},
			"kallad_executor_demand is not inside sum()/max()"},
		{"one term of a sum not aggregated", keda, []string{"query: max(kallad_executor_demand)", "query: max(kallad_executor_demand) + kallad_tasks_queued"},
			"kallad_tasks_queued is not inside sum()/max()"},
		{"threshold 0", keda, []string{`threshold: "2"`, `threshold: "0"`}, `threshold "0" must be a number above 0`},
		{"threshold not a number", keda, []string{`threshold: "2"`, `threshold: "two"`}, `threshold "two" must be a number above 0`},
		{"negative activation threshold", keda, []string{`activationThreshold: "0"`, `activationThreshold: "-1"`}, `activationThreshold "-1" must be a number, 0 or more`},
	} {
		t.Run(m.name, func(t *testing.T) {
			broken := m.write(t, t.TempDir())
			var all []object
			for _, f := range files {
				if filepath.Base(f) == filepath.Base(broken) {
					f = broken
				}
				objs, err := c.check(f)
				if err != nil {
					t.Fatal(err) // each file alone is valid
				}
				all = append(all, objs...)
			}
			wantError(t, checkScaling(all, "../.."), m.want)
		})
	}
}

// Queries whose every metric is aggregated pass, through other functions
// too; any bare reference fails.
func TestAggregated(t *testing.T) {
	for q, want := range map[string]bool{
		"max(kallad_executor_demand)":                         true,
		"sum(kallad_queue_depth) + sum(kallad_tasks_queued)":  true,
		"max(rate(kallad_jobs_completed_total[5m]))":          true,
		"sum by (pod) (kallad_active_jobs)":                   true,
		"kallad_executor_demand":                              false,
		"rate(kallad_jobs_completed_total[5m])":               false,
		"max(kallad_executor_demand) + (kallad_tasks_queued)": false,
		"max(kallad_queue_depth) + abs(kallad_tasks_queued)":  false,
	} {
		at := metricRef.FindAllStringIndex(q, -1)
		got := true
		for _, r := range at {
			got = got && aggregated(q, r[0])
		}
		if got != want {
			t.Errorf("%q: aggregated %v, want %v", q, got, want)
		}
	}
}

// The metric names come from the sources' string literals: the ones KEDA
// and operators use are found, and a tree without kallad sources is an
// error rather than "every name unknown".
func TestServedMetrics(t *testing.T) {
	got, err := servedMetrics("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kallad_executor_demand", "kallad_jobs_running_local", "kallad_job_slots", "kallad_queue_depth", "kallad_tasks_queued", "kallad_active_jobs"} {
		if !got[name] {
			t.Errorf("%s not found among %v", name, sortedKeys(got))
		}
	}
	if got["kallad_"] || len(got) > 60 {
		t.Errorf("names that are not metrics: %v", sortedKeys(got))
	}
	_, err = servedMetrics(t.TempDir())
	wantError(t, err, "no kallad_ metric defined")
}
