package main

import (
	"testing"
)

// Broken manifests fail: unknown fields, wrong types, missing required
// fields, unknown kinds and duplicate keys, in core kinds and in KEDA's
// ScaledObject alike.
func TestManifestsReject(t *testing.T) {
	const executor, scheduler, keda = "deploy/k8s/executor.yaml", "deploy/k8s/scheduler.yaml", "deploy/k8s/keda-scaledobject.yaml"
	c, err := newManifestChecker(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []mutation{
		{"unknown pod field", executor, []string{"terminationGracePeriodSeconds:", "terminationGracePeriod:"},
			"additional properties 'terminationGracePeriod' not allowed"},
		{"unknown probe field", executor, []string{"periodSeconds: 5", "period: 5"}, "/spec/template/spec/containers/0/readinessProbe"},
		{"wrong type", executor, []string{"replicas: 2", "replicas: two"}, "/spec/replicas"},
		{"env value not a string", executor, []string{`{name: BIND_PORT, value: "50051"}`, `{name: BIND_PORT, value: 50051}`},
			"/spec/template/spec/containers/0/env/3/value"},
		{"missing container name", executor, []string{"- name: kallad\n          image:", "- image:"}, "missing property 'name'"},
		{"missing selector", scheduler, []string{"  selector:\n    matchLabels: {app.kubernetes.io/name: kalla, app.kubernetes.io/component: scheduler}\n", ""},
			"missing property 'selector'"},
		{"service port not a number", scheduler, []string{"{name: http, port: 8080,", "{name: http, port: http,"}, "/spec/ports/0/port"},
		{"duplicate key", scheduler, []string{"replicas: 1\n", "replicas: 1\n  replicas: 2\n"}, "duplicate"},
		{"unknown apiVersion", executor, []string{"apiVersion: apps/v1", "apiVersion: apps/v2"}, "could not find schema"},
		{"KEDA unknown field", keda, []string{"minReplicaCount:", "minReplicas:"}, "additional properties 'minReplicas' not allowed"},
		{"KEDA unknown metadata field", keda, []string{"  labels: {app", "  lables: {app"}, "additional properties 'lables' not allowed"},
		{"KEDA wrong type", keda, []string{"maxReplicaCount: 16", `maxReplicaCount: "16"`}, "/spec/maxReplicaCount"},
		{"KEDA trigger metadata not a string", keda, []string{`threshold: "2"`, "threshold: 2"}, "/spec/triggers/0/metadata/threshold"},
		{"KEDA missing scaleTargetRef.name", keda, []string{"    name: kalla-executor\n", "    kind: Deployment\n"}, "missing property 'name'"},
	} {
		t.Run(m.name, func(t *testing.T) {
			_, err := c.check(m.write(t, t.TempDir()))
			wantError(t, err, m.want)
		})
	}
}

// What the API server accepts passes: quantities as numbers, int-or-string
// ports as numbers or names.
func TestManifestsAccept(t *testing.T) {
	c, err := newManifestChecker(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []mutation{
		{"quantity as a number", "deploy/k8s/executor.yaml", []string{`cpu: "4"`, "cpu: 4"}, ""},
		{"target port as a number", "deploy/k8s/scheduler.yaml", []string{"targetPort: http}", "targetPort: 8080}"}, ""},
		{"probe port as a number", "deploy/k8s/executor.yaml", []string{"port: probes}", "port: 50051}"}, ""},
	} {
		t.Run(m.name, func(t *testing.T) {
			if _, err := c.check(m.write(t, t.TempDir())); err != nil {
				t.Fatal(err)
			}
		})
	}
}
