package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

const schedulerHealth = `    healthcheck:
      test: ["CMD", "kallad", "health", "http://127.0.0.1:8080"]
      interval: 5s
      timeout: 3s
      retries: 12
      start_period: 30s
`

// Compose files whose services do not say when they are healthy, or start
// before what they need is healthy, are refused.
func TestComposeHealthRejects(t *testing.T) {
	const cluster, single = "docker-compose.cluster.yml", "docker-compose.single.yml"
	for _, m := range []mutation{
		{"no healthcheck", single, []string{schedulerHealth, ""}, "service scheduler: no healthcheck"},
		{"healthcheck that checks nothing", single, []string{`["CMD", "kallad", "health", "http://127.0.0.1:8080"]`, `["CMD", "kallad", "version"]`},
			`service scheduler: healthcheck ["CMD" "kallad" "version"] does not check /health`},
		{"disabled healthcheck", single, []string{schedulerHealth, "    healthcheck: {disable: true}\n"}, "service scheduler: no healthcheck"},
		{"executors start before the scheduler is healthy", cluster, []string{"scheduler: {condition: service_healthy}", "scheduler: {condition: service_started}"},
			"service executor: depends_on scheduler: service_started starts it before scheduler is healthy"},
		{"service_healthy on a service without healthcheck", cluster, []string{`      test: ["CMD", "mc", "ready", "local"]
      interval: 2s
      retries: 30
`, "", "    healthcheck:\n    restart: unless-stopped\n  minio-init:", "    restart: unless-stopped\n  minio-init:"},
			"service minio-init: depends_on minio: service_healthy, but minio has no healthcheck"},
		{"Postgres data in the container", single, []string{"postgres-data:/var/lib/postgresql/data", "postgres-data:/srv/elsewhere"},
			"service postgres: Postgres data is not in a named volume"},
		{"Postgres data in a bind mount", single, []string{"      - postgres-data:/var/lib/postgresql/data\n", "      - ./examples:/var/lib/postgresql/data\n"},
			"service postgres: Postgres data is not in a named volume"},
	} {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "examples"), 0o755); err != nil {
				t.Fatal(err)
			}
			file := m.write(t, dir)
			project, _, err := checkComposeFile(context.Background(), file)
			if err != nil {
				t.Fatalf("the mutated file does not load: %v", err)
			}
			wantError(t, checkComposeHealth(file, project), m.want)
		})
	}
}

// An image that does not expose its ports or cannot check its own health
// is refused.
func TestImageRejects(t *testing.T) {
	for _, m := range []mutation{
		{"no HEALTHCHECK", "Dockerfile", []string{`HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["kallad", "health"]`, ""},
			`HEALTHCHECK []: want HEALTHCHECK CMD ["kallad", "health"]`},
		{"HEALTHCHECK that checks nothing", "Dockerfile", []string{`CMD ["kallad", "health"]`, `CMD ["kallad", "version"]`}, `HEALTHCHECK ["CMD" "kallad" "version"]`},
		{"probe port not exposed", "Dockerfile", []string{"EXPOSE 8080 50050 50051", "EXPOSE 8080 50050"}, "port 50051 is not in EXPOSE"},
		{"cluster port not exposed", "Dockerfile", []string{"EXPOSE 8080 50050 50051", "EXPOSE 8080 50051"}, "port 50050 is not in EXPOSE"},
		{"probe port not set", "Dockerfile", []string{" BIND_PORT=50051", ""}, "no ENV BIND_PORT"},
		{"probe port set but another exposed", "Dockerfile", []string{"BIND_PORT=50051", "BIND_PORT=9100"}, "port 9100 is not in EXPOSE"},
	} {
		t.Run(m.name, func(t *testing.T) {
			wantError(t, checkImage(m.write(t, t.TempDir())), m.want)
		})
	}
}
