package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// checkCompose loads a compose file the way `docker compose config` does:
// compose-go's loader validates it against the compose JSON schema,
// interpolates variables (from env only, so the result does not depend on
// the caller's shell), normalizes it and checks its consistency (services,
// volumes and networks that are referred to exist). It then checks what
// `docker compose up --build` would need from the disk: every build context
// has its Dockerfile, which checkDockerfile checks, and every bind-mount
// source exists.
func checkCompose(ctx context.Context, file string, env []string) (*types.Project, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", file, err)
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(env),
		cli.WithName("kalla"),
	)
	if err != nil {
		return nil, fmt.Errorf("compose %s: options: %w", file, err)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", file, err)
	}
	var errs []error
	for _, name := range project.ServiceNames() {
		svc := project.Services[name]
		if err := checkBuild(svc); err != nil {
			errs = append(errs, fmt.Errorf("compose %s: service %s: %w", file, name, err))
		}
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				errs = append(errs, fmt.Errorf("compose %s: service %s: bind mount source: %w", file, name, err))
			}
		}
	}
	return project, errors.Join(errs...)
}

// checkBuild checks that a service's build context holds its Dockerfile,
// and the Dockerfile.
func checkBuild(svc types.ServiceConfig) error {
	if svc.Build == nil {
		return nil
	}
	dockerfile := svc.Build.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(svc.Build.Context, dockerfile)
	}
	if _, err := os.Stat(dockerfile); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return checkDockerfile(dockerfile, svc.Build.Context)
}
