package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Broken compose files fail as `docker compose config` would fail on them,
// or as `docker compose up --build` would on a missing Dockerfile or mount.
func TestComposeRejects(t *testing.T) {
	const cluster, single = "docker-compose.cluster.yml", "docker-compose.single.yml"
	for _, m := range []mutation{
		{"unknown service field", cluster, []string{"    environment:\n      SCHEDULER_HOST", "    enviroment:\n      SCHEDULER_HOST"},
			"services.executor.enviroment"},
		{"wrong type", single, []string{"retries: 30", "retries: thirty"}, "retries"},
		{"port out of range", single, []string{`ports: ["8080:8080"]`, `ports: ["80800:8080"]`}, "80800"},
		{"depends_on an undefined service", cluster, []string{"minio: {condition: service_healthy}", "s3: {condition: service_healthy}"},
			"depends on undefined service"},
		{"undefined named volume", cluster, []string{"  kalla-data:\n  minio:", "  minio:"},
			"undefined volume kalla-data"},
		{"missing bind-mount source", single, []string{"./examples:/examples:ro", "./example:/examples:ro"},
			"bind mount source"},
		{"missing Dockerfile", single, []string{"build: .", "build: {context: ., dockerfile: Dockerfile.missing}"},
			"Dockerfile.missing"},
	} {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			// What the real files need from the build context.
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "examples"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, _, err := checkComposeFile(context.Background(), m.write(t, dir))
			wantError(t, err, m.want)
		})
	}
}

// Interpolation takes its variables from the environment given, as
// `docker compose config` takes them from the shell; a required variable
// left unset fails, naming it.
func TestComposeInterpolates(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := mutation{file: "docker-compose.single.yml", edits: []string{"    build: .\n", ""}}
	file := m.write(t, dir)
	_, err := checkCompose(context.Background(), file, []string{"KALLA_PG_PASSWORD=s3cret"})
	wantError(t, err, "required variable KALLA_API_TOKEN is missing a value")
	project, err := checkCompose(context.Background(), file, []string{"KALLA_PG_PASSWORD=s3cret", "KALLA_API_TOKEN=t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	if got := project.Services["postgres"].Environment["POSTGRES_PASSWORD"]; got == nil || *got != "s3cret" {
		t.Fatalf("POSTGRES_PASSWORD = %v, want s3cret", got)
	}
	if got := project.Services["scheduler"].Environment["KALLA_API_TOKEN"]; got == nil || *got != "t0ken" {
		t.Fatalf("KALLA_API_TOKEN = %v, want t0ken", got)
	}
}
