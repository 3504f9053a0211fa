package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/yaml"
)

// manifestChecker validates Kubernetes manifests with kubeconform in strict
// mode (unknown fields and duplicate keys fail) against the schemas
// writeSchemas put in a folder. A kind without a schema fails too.
type manifestChecker struct {
	v validator.Validator
}

func newManifestChecker(schemaDir string) (*manifestChecker, error) {
	v, err := validator.New([]string{filepath.Join(schemaDir, schemaTemplate)}, validator.Opts{Strict: true})
	if err != nil {
		return nil, fmt.Errorf("kubeconform: %w", err)
	}
	return &manifestChecker{v: v}, nil
}

// check validates every document of a manifest file and returns the
// objects it holds.
func (c *manifestChecker) check(file string) ([]object, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var objs []object
	var errs []error
	for _, res := range c.v.Validate(file, f) {
		sig, _ := res.Resource.Signature()
		where := file
		if sig != nil && sig.Kind != "" {
			where = fmt.Sprintf("%s: %s %s", file, sig.Kind, sig.Name)
		}
		switch res.Status {
		case validator.Valid:
			var o object
			if err := yaml.Unmarshal(res.Resource.Bytes, &o); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			objs = append(objs, o)
		case validator.Empty:
		case validator.Invalid:
			errs = append(errs, fmt.Errorf("%s: %s", where, violations(res.Err)))
		default:
			errs = append(errs, fmt.Errorf("%s: %w", where, res.Err))
		}
	}
	if len(objs) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no Kubernetes object", file))
	}
	return objs, errors.Join(errs...)
}

// violations keeps of kubeconform's message the schema violations: "at
// '/spec/replicas': got string, want integer", one or more.
func violations(err error) string {
	msg := err.Error()
	if _, after, found := strings.Cut(msg, "- at "); found {
		return "at " + strings.Join(strings.Fields(after), " ")
	}
	return msg
}
