package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// Secrets are never written in the deployment files: a value committed
// there is a default every installation shares until someone changes it
// (issue 10 found KALLA_CLUSTER_TOKEN: change-me in all of them). Compose
// files take them from the environment or an .env file as required
// variables, `${NAME:?message}`; manifests from a Secret the operator
// creates (secretKeyRef), and no Secret with data is committed.

// checkComposeFile checks a compose file's secrets as written, then loads
// it as `docker compose` would with an .env file giving each variable it
// requires, and returns the variables it requires.
func checkComposeFile(ctx context.Context, file string) (*types.Project, []string, error) {
	if err := checkComposeSecrets(file); err != nil {
		return nil, nil, err
	}
	required, err := requiredVars(file)
	if err != nil {
		return nil, nil, err
	}
	var env []string
	for _, name := range required {
		env = append(env, name+"=placeholder-of-deploy-check")
	}
	project, err := checkCompose(ctx, file, env)
	return project, required, err
}

// secretName matches the variables that hold a secret: tokens, passwords,
// secret keys and seeds. Names ending in _FILE hold a path.
var secretName = regexp.MustCompile(`(?i)(TOKEN|PASSWORD|SECRET|SEED)`)

func isSecretName(name string) bool {
	return secretName.MatchString(name) && !strings.HasSuffix(strings.ToUpper(name), "_FILE")
}

// requiredVar is a compose value that is only a required variable; a
// variable with a default (`${X:-v}`) or a literal around it is refused.
var requiredVar = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$`)

// checkComposeSecrets checks a compose file as written, before
// interpolation: every secret variable of every service is a required
// variable, or is named without a value (taken from the environment of
// `docker compose`).
func checkComposeSecrets(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("compose %s: %w", file, err)
	}
	var doc struct {
		Services map[string]struct {
			Environment any `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("compose %s: %w", file, err)
	}
	var errs []error
	for _, svc := range sortedKeys(doc.Services) {
		for name, value := range composeEnv(doc.Services[svc].Environment) {
			if isSecretName(name) && value != nil && !requiredVar.MatchString(*value) {
				errs = append(errs, fmt.Errorf("compose %s: service %s: %s is written in the file; take it from the environment or an .env file: %s: ${%s:?set %s}", file, svc, name, name, name, name))
			}
		}
	}
	return errors.Join(errs...)
}

// composeEnv reads a service's environment, a map or a list of NAME=value;
// a nil value is a name without a value.
func composeEnv(env any) map[string]*string {
	out := map[string]*string{}
	switch e := env.(type) {
	case map[string]any:
		for k, v := range e {
			if v == nil {
				out[k] = nil
				continue
			}
			s := fmt.Sprint(v)
			out[k] = &s
		}
	case []any:
		for _, item := range e {
			k, v, ok := strings.Cut(fmt.Sprint(item), "=")
			if !ok {
				out[k] = nil
				continue
			}
			out[k] = &v
		}
	}
	return out
}

// requiredVarRef finds the variables a compose file requires.
var requiredVarRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):?\?`)

// requiredVars lists the variables a compose file requires (`${X:?...}`),
// which `docker compose` takes from the shell or the .env file.
func requiredVars(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", file, err)
	}
	seen := map[string]bool{}
	var names []string
	for _, m := range requiredVarRef.FindAllSubmatch(raw, -1) {
		if n := string(m[1]); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// checkManifestSecrets checks a manifest file: no container sets a secret
// variable by value, and no Secret carries data.
func checkManifestSecrets(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", file, err)
	}
	var errs []error
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var o struct {
			Kind       string                `json:"kind"`
			Metadata   struct{ Name string } `json:"metadata"`
			Data       map[string]any        `json:"data"`
			StringData map[string]any        `json:"stringData"`
			Spec       struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name string `json:"name"`
							Env  []struct {
								Name  string  `json:"name"`
								Value *string `json:"value"`
							} `json:"env"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &o); err != nil {
			errs = append(errs, fmt.Errorf("manifest %s: %w", file, err))
			continue
		}
		where := fmt.Sprintf("manifest %s: %s %s", file, o.Kind, o.Metadata.Name)
		if o.Kind == "Secret" && (len(o.Data) > 0 || len(o.StringData) > 0) {
			errs = append(errs, fmt.Errorf("%s: a Secret with its values is committed; tell the operator how to create it instead", where))
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if isSecretName(e.Name) && e.Value != nil {
					errs = append(errs, fmt.Errorf("%s: container %s: %s has a value in the file; take it from a Secret (valueFrom.secretKeyRef)", where, c.Name, e.Name))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
