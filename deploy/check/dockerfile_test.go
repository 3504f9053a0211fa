package main

import (
	"testing"
)

// Broken Dockerfiles fail as `docker build` (or its --check) would on them.
func TestDockerfileRejects(t *testing.T) {
	for _, m := range []mutation{
		{"unknown instruction", "Dockerfile", []string{"WORKDIR /src", "WORKDI /src"}, "unknown instruction"},
		{"ENV without a value", "Dockerfile", []string{"ENV KALLA_DATA_DIR=/var/lib/kalla/data STAGING_PATH=/staging BIND_PORT=50051", "ENV KALLA_DATA_DIR"}, "ENV"},
		{"linter warning", "Dockerfile", []string{"AS build", "as build"}, "FromAsCasing"},
		{"COPY source not in the context", "Dockerfile", []string{"COPY go.mod go.sum ./", "COPY go.mod go.work ./"}, "COPY source go.work"},
		{"COPY --from no stage", "Dockerfile", []string{"--from=build", "--from=builder"}, "COPY --from=builder names no earlier stage"},
		{"golang image older than go.mod", "Dockerfile", []string{"golang:1.26-bookworm", "golang:1.25-bookworm"}, "older than go.mod's go"},
	} {
		t.Run(m.name, func(t *testing.T) {
			wantError(t, checkDockerfile(m.write(t, t.TempDir()), "../.."), m.want)
		})
	}
}
