package main

import (
	"path/filepath"
	"testing"
)

// Manifests that are each valid but do not fit together fail.
func TestReferencesReject(t *testing.T) {
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
		{"selector does not match the pod labels", executor,
			[]string{"labels: {app.kubernetes.io/name: kalla, app.kubernetes.io/component: executor}\n      annotations", "labels: {app.kubernetes.io/name: kalla, app.kubernetes.io/component: worker}\n      annotations"},
			"does not match the pod labels"},
		{"claimed PVC in no manifest", executor, []string{"claimName: kalla-staging", "claimName: kalla-stage"}, "claims kalla-stage"},
		{"probe names no container port", executor, []string{"port: probes}", "port: probe}"}, `probes port "probe"`},
		{"service targets no container port", scheduler, []string{"targetPort: cluster}", "targetPort: nats}"}, `targets "nats"`},
		{"service selects no pods", scheduler, []string{"  selector: {app.kubernetes.io/name: kalla, app.kubernetes.io/component: scheduler}", "  selector: {app.kubernetes.io/name: kalla, app.kubernetes.io/component: api}"},
			"selects the pods of no Deployment"},
		{"scale target in no manifest", keda, []string{"  scaleTargetRef:\n    name: kalla-executor", "  scaleTargetRef:\n    name: kalla-executors"},
			"scale target Deployment kalla-executors"},
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
			wantError(t, checkReferences(all), m.want)
		})
	}
}
