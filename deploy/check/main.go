// Command check validates Kalla's deployment files without a Docker engine
// or a cluster: the CI workflow, the Dockerfile with BuildKit's parser and linter, the
// compose files with compose-go (the loader of `docker compose config`),
// and the Kubernetes manifests, KEDA's ScaledObject included, with
// kubeconform in strict mode against schemas made from the Kubernetes
// OpenAPI spec and KEDA's CRD (fetched as Go modules), then the references
// between the manifests (selectors, ports, claims, scale target).
//
//	cd deploy/check && go run . [-root ../..] [-schemas DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	root := flag.String("root", "../..", "the repository's root")
	schemas := flag.String("schemas", "", "write the JSON schemas into this folder and keep them (for kubeconform -schema-location DIR/"+schemaTemplate+")")
	flag.Parse()
	if err := run(context.Background(), *root, *schemas, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run validates root's Dockerfile, docker-compose*.yml and deploy/k8s/*.yaml,
// writing the schemas into schemaDir (a temporary folder when empty).
func run(ctx context.Context, root, schemaDir string, out io.Writer) error {
	composeFiles, err := filepath.Glob(filepath.Join(root, "docker-compose*.yml"))
	if err != nil || len(composeFiles) == 0 {
		return fmt.Errorf("no docker-compose*.yml in %s (%v)", root, err)
	}
	manifests, err := filepath.Glob(filepath.Join(root, "deploy", "k8s", "*.yaml"))
	if err != nil || len(manifests) == 0 {
		return fmt.Errorf("no deploy/k8s/*.yaml in %s (%v)", root, err)
	}
	if schemaDir == "" {
		if schemaDir, err = os.MkdirTemp("", "kalla-schemas-"); err != nil {
			return fmt.Errorf("schemas: %w", err)
		}
		defer os.RemoveAll(schemaDir)
	} else if err := os.MkdirAll(schemaDir, 0o755); err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	var errs []error
	if err := errors.Join(checkDockerfile(filepath.Join(root, "Dockerfile"), root), checkImage(filepath.Join(root, "Dockerfile"))); err != nil {
		errs = append(errs, err)
	} else {
		fmt.Fprintf(out, "ok %s\n", filepath.Join(root, "Dockerfile"))
	}
	for _, f := range composeFiles {
		project, required, err := checkComposeFile(ctx, f)
		if err == nil {
			err = checkComposeHealth(f, project)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "ok %s: services %s; requires %s\n", f, strings.Join(project.ServiceNames(), ", "), strings.Join(required, ", "))
	}
	ci := filepath.Join(root, ".github", "workflows", "ci.yml")
	if err := checkWorkflow(ci, filepath.Join(root, "README.md")); err != nil {
		errs = append(errs, err)
	} else {
		fmt.Fprintf(out, "ok %s\n", ci)
	}
	if err := writeSchemas(ctx, schemaDir); err != nil {
		return errors.Join(append(errs, err)...)
	}
	c, err := newManifestChecker(schemaDir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var all []object
	for _, f := range manifests {
		if err := checkManifestSecrets(f); err != nil {
			errs = append(errs, err)
			continue
		}
		objs, err := c.check(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, objs...)
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.Kind)
		}
		fmt.Fprintf(out, "ok %s: %s\n", f, strings.Join(kinds, ", "))
	}
	if len(errs) == 0 {
		if err := checkReferences(all); err != nil {
			return err
		}
		fmt.Fprintf(out, "ok references between the %d objects of deploy/k8s\n", len(all))
		if err := checkScaling(all, root); err != nil {
			return err
		}
		fmt.Fprintln(out, "ok probes and KEDA triggers of deploy/k8s")
	}
	return errors.Join(errs...)
}
