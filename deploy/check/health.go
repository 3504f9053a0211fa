package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Containers must say when they are healthy and wait for what they need to
// be healthy (issue 11: the only compose healthcheck was `kallad version`,
// and executors started before the scheduler could take them). The image
// has no HTTP client, so kallad's own `kallad health [URL]` checks /health.

// kalladImage is the image the compose files build and run kallad from.
const kalladImage = "kalla/kallad"

// checkComposeHealth checks a loaded compose project:
//   - every long-running service has a healthcheck (a service others wait
//     for with service_completed_successfully is a one-shot job and needs
//     none);
//   - a kallad service's healthcheck is `kallad health`, which GETs /health;
//   - depends_on waits for health: service_healthy names a service with a
//     healthcheck, and a service with one is not waited for with
//     service_started only;
//   - a Postgres keeps its data in a named volume, so that recreating the
//     container (docker compose up after a change) does not lose it.
func checkComposeHealth(file string, project *types.Project) error {
	oneShot := map[string]bool{}
	for _, svc := range project.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	healthy := func(name string) bool {
		h := project.Services[name].HealthCheck
		return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
	}
	var errs []error
	for _, name := range project.ServiceNames() {
		svc := project.Services[name]
		where := fmt.Sprintf("compose %s: service %s", file, name)
		if !oneShot[name] && !healthy(name) {
			errs = append(errs, fmt.Errorf("%s: no healthcheck: give every long-running service one (kallad services: [CMD, kallad, health, URL])", where))
		}
		if strings.HasPrefix(svc.Image, kalladImage+":") && healthy(name) {
			if t := svc.HealthCheck.Test; len(t) < 3 || t[0] != "CMD" || t[1] != "kallad" || t[2] != "health" {
				errs = append(errs, fmt.Errorf("%s: healthcheck %q does not check /health: use [CMD, kallad, health, URL]", where, t))
			}
		}
		for _, dep := range sortedKeys(svc.DependsOn) {
			switch cond := svc.DependsOn[dep].Condition; {
			case cond == types.ServiceConditionHealthy && !healthy(dep):
				errs = append(errs, fmt.Errorf("%s: depends_on %s: service_healthy, but %s has no healthcheck", where, dep, dep))
			case cond == types.ServiceConditionStarted && healthy(dep):
				errs = append(errs, fmt.Errorf("%s: depends_on %s: service_started starts it before %s is healthy: use condition: service_healthy", where, dep, dep))
			}
		}
		if image, _, _ := strings.Cut(svc.Image, ":"); image == "postgres" && !hasNamedVolume(svc, "/var/lib/postgresql") {
			errs = append(errs, fmt.Errorf("%s: Postgres data is not in a named volume: mount one at /var/lib/postgresql/data", where))
		}
	}
	return errors.Join(errs...)
}

// hasNamedVolume reports whether svc mounts a named volume at or below dir.
func hasNamedVolume(svc types.ServiceConfig, dir string) bool {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source != "" && (v.Target == dir || strings.HasPrefix(v.Target, dir+"/")) {
			return true
		}
	}
	return false
}

// imagePorts are the ports a kallad container listens on by default: the
// HTTP API (HTTP_PORT), the cluster port (GRPC_PORT), and the executor's
// probes, whose port the image must set in BIND_PORT (kallad's own default,
// 0, picks a free port, which nothing outside could find).
var imagePorts = []string{"8080", "50050"}

// checkImage checks the final stage of kallad's Dockerfile: it sets
// BIND_PORT, EXPOSEs every port kallad listens on, and has a HEALTHCHECK
// that runs `kallad health`.
func checkImage(dockerfile string) error {
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		return fmt.Errorf("dockerfile: %w", err)
	}
	res, err := parser.Parse(strings.NewReader(string(raw)))
	if err != nil {
		return fmt.Errorf("dockerfile %s: %w", dockerfile, err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil || len(stages) == 0 {
		return fmt.Errorf("dockerfile %s: no stage (%v)", dockerfile, err)
	}
	final := stages[len(stages)-1]
	var exposed []string
	var bindPort string
	var health []string
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.ExposeCommand:
			for _, p := range c.Ports {
				exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "BIND_PORT" {
					bindPort = kv.Value
				}
			}
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		}
	}
	where := fmt.Sprintf("dockerfile %s: final stage", dockerfile)
	var errs []error
	want := imagePorts
	if bindPort == "" {
		errs = append(errs, fmt.Errorf("%s: no ENV BIND_PORT: the executor's probe port would be a random one", where))
	} else {
		want = append(slices.Clone(want), bindPort)
	}
	for _, p := range want {
		if !slices.Contains(exposed, p) {
			errs = append(errs, fmt.Errorf("%s: port %s is not in EXPOSE %s", where, p, strings.Join(exposed, " ")))
		}
	}
	if len(health) < 3 || health[0] != "CMD" || health[1] != "kallad" || health[2] != "health" {
		errs = append(errs, fmt.Errorf("%s: HEALTHCHECK %q: want HEALTHCHECK CMD [\"kallad\", \"health\"]", where, health))
	}
	return errors.Join(errs...)
}
