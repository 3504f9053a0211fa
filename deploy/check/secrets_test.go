package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A secret written in a compose file, or given a default, fails; so does
// one set by value in a manifest, or a committed Secret with its data.
func TestSecretsRejected(t *testing.T) {
	const cluster, single = "docker-compose.cluster.yml", "docker-compose.single.yml"
	const scheduler, executor = "deploy/k8s/scheduler.yaml", "deploy/k8s/executor.yaml"
	for _, m := range []mutation{
		{"cluster token written in compose", cluster,
			[]string{"KALLA_CLUSTER_TOKEN: ${KALLA_CLUSTER_TOKEN:?set KALLA_CLUSTER_TOKEN in .env or the environment}", "KALLA_CLUSTER_TOKEN: change-me"},
			"service scheduler: KALLA_CLUSTER_TOKEN is written in the file"},
		{"API token with a default", single,
			[]string{"${KALLA_API_TOKEN:?set KALLA_API_TOKEN in .env or the environment}", "${KALLA_API_TOKEN:-s3cret}"},
			"service scheduler: KALLA_API_TOKEN is written in the file"},
		{"secret around a variable", cluster,
			[]string{"AWS_SECRET_ACCESS_KEY: ${KALLA_S3_SECRET:?", "AWS_SECRET_ACCESS_KEY: kalla-${KALLA_S3_SECRET:?"},
			"AWS_SECRET_ACCESS_KEY is written in the file"},
		{"database password written in compose", single,
			[]string{"POSTGRES_PASSWORD: ${KALLA_PG_PASSWORD:?set KALLA_PG_PASSWORD in .env or the environment}", "POSTGRES_PASSWORD: kalla"},
			"service postgres: POSTGRES_PASSWORD is written in the file"},
		{"secret in a list environment", single,
			[]string{"    environment:\n      HTTP_PORT:", "    environment:\n      - KALLA_CLUSTER_TOKEN=change-me\n    x-was:\n      HTTP_PORT:"},
			"KALLA_CLUSTER_TOKEN is written in the file"},
	} {
		t.Run(m.name, func(t *testing.T) {
			wantError(t, checkComposeSecrets(m.write(t, t.TempDir())), m.want)
		})
	}
	for _, m := range []mutation{
		{"cluster token by value", executor,
			[]string{"valueFrom: {secretKeyRef: {name: kalla, key: cluster-token}}", "value: change-me"},
			"container kallad: KALLA_CLUSTER_TOKEN has a value in the file"},
		{"API token by value", scheduler,
			[]string{"valueFrom: {secretKeyRef: {name: kalla, key: api-token}}", `value: ""`},
			"container kallad: KALLA_API_TOKEN has a value in the file"},
		{"a committed Secret", scheduler,
			[]string{"---\napiVersion: apps/v1", "---\napiVersion: v1\nkind: Secret\nmetadata: {name: kalla}\nstringData: {cluster-token: change-me}\n---\napiVersion: apps/v1"},
			"Secret kalla: a Secret with its values is committed"},
	} {
		t.Run(m.name, func(t *testing.T) {
			wantError(t, checkManifestSecrets(m.write(t, t.TempDir())), m.want)
		})
	}
}

// Secrets from the environment pass: a required variable, or a name
// without a value.
func TestSecretsAccepted(t *testing.T) {
	for _, m := range []mutation{
		{"name without a value", "docker-compose.single.yml",
			[]string{"      KALLA_API_TOKEN: ${KALLA_API_TOKEN:?set KALLA_API_TOKEN in .env or the environment}\n", "      KALLA_API_TOKEN:\n"}, ""},
		{"required variable without a message", "docker-compose.cluster.yml",
			[]string{"KALLA_CLUSTER_TOKEN: ${KALLA_CLUSTER_TOKEN:?set KALLA_CLUSTER_TOKEN in .env or the environment}", "KALLA_CLUSTER_TOKEN: ${KALLA_CLUSTER_TOKEN?}"}, ""},
	} {
		t.Run(m.name, func(t *testing.T) {
			if err := checkComposeSecrets(m.write(t, t.TempDir())); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The repository's files load once the variables they require are set.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := mutation{file: "docker-compose.cluster.yml"}
	if _, required, err := checkComposeFile(context.Background(), m.write(t, dir)); err != nil || len(required) != 4 {
		t.Fatalf("required %v, err %v", required, err)
	}
}
