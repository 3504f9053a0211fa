package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// schemaTemplate is the kubeconform -schema-location of the files that
// writeSchemas makes.
const schemaTemplate = "{{ .ResourceKind }}{{ .KindSuffix }}.json"

// definitionsFile holds every definition of the Kubernetes OpenAPI spec; the
// file of each kind refers to its definition there.
const definitionsFile = "_definitions.json"

// objectMeta is the definition of every object's metadata.
const objectMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

// writeSchemas writes into dir the strict JSON schemas kubeconform reads
// (named as its schemaTemplate expects): one for each kind of the Kubernetes
// API, made from the OpenAPI spec as openapi2jsonschema makes the
// kubernetes-json-schema files, and one for KEDA's ScaledObject, made from
// its CRD's openAPIV3Schema. Strict means an object rejects properties its
// schema does not name, as `kubeconform -strict` does.
func writeSchemas(ctx context.Context, dir string) error {
	k8s, err := moduleDir(ctx, kubernetesModule)
	if err != nil {
		return err
	}
	if err := writeKubernetesSchemas(filepath.Join(k8s, "api", "openapi-spec", "swagger.json"), dir); err != nil {
		return err
	}
	keda, err := moduleDir(ctx, kedaModule)
	if err != nil {
		return err
	}
	return writeCRDSchemas(filepath.Join(keda, "config", "crd", "bases", "keda.sh_scaledobjects.yaml"), dir)
}

func writeKubernetesSchemas(swagger, dir string) error {
	raw, err := os.ReadFile(swagger)
	if err != nil {
		return fmt.Errorf("kubernetes schemas: %w", err)
	}
	var spec struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("kubernetes schemas: %s: %w", swagger, err)
	}
	if len(spec.Definitions) == 0 {
		return fmt.Errorf("kubernetes schemas: %s has no definitions", swagger)
	}
	// Quantities are written as strings or numbers (cpu: 4, memory: 8Gi).
	spec.Definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = map[string]any{
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}},
	}
	for _, def := range spec.Definitions {
		strict(def)
	}
	if err := writeJSON(filepath.Join(dir, definitionsFile), map[string]any{"definitions": spec.Definitions}); err != nil {
		return err
	}
	for _, def := range spec.Definitions {
		gvks, _ := def.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			schema, err := kindSchema(apiVersion, kind, def.(map[string]any), definitionsFile)
			if err != nil {
				return err
			}
			if err := writeJSON(filepath.Join(dir, schemaFile(apiVersion, kind)), schema); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCRDSchemas writes the schemas of a CRD's versions; their metadata
// refers to the definitions writeKubernetesSchemas wrote.
func writeCRDSchemas(crdFile, dir string) error {
	raw, err := os.ReadFile(crdFile)
	if err != nil {
		return fmt.Errorf("CRD schemas: %w", err)
	}
	var crd struct {
		Spec struct {
			Group    string                `json:"group"`
			Names    struct{ Kind string } `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return fmt.Errorf("CRD schemas: %s: %w", crdFile, err)
	}
	if len(crd.Spec.Versions) == 0 {
		return fmt.Errorf("CRD schemas: %s has no versions", crdFile)
	}
	for _, v := range crd.Spec.Versions {
		if v.Schema.OpenAPIV3Schema == nil {
			return fmt.Errorf("CRD schemas: %s: version %s has no openAPIV3Schema", crdFile, v.Name)
		}
		strict(v.Schema.OpenAPIV3Schema)
		// The API server checks a custom object's metadata as any object's;
		// CRDs declare it only as an object.
		if props, ok := v.Schema.OpenAPIV3Schema["properties"].(map[string]any); ok {
			props["metadata"] = map[string]any{"$ref": definitionsFile + "#/definitions/" + objectMeta}
		}
		apiVersion := crd.Spec.Group + "/" + v.Name
		schema, err := kindSchema(apiVersion, crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema, "")
		if err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(dir, schemaFile(apiVersion, crd.Spec.Names.Kind)), schema); err != nil {
			return err
		}
	}
	return nil
}

// kindSchema is the schema of one kind: a copy of its definition whose
// references point into refBase, whose apiVersion and kind select only it,
// and which requires the metadata every object has.
func kindSchema(apiVersion, kind string, def map[string]any, refBase string) (map[string]any, error) {
	raw, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("schema of %s %s: %w", apiVersion, kind, err)
	}
	raw = bytes.ReplaceAll(raw, []byte(`"$ref":"#/`), []byte(`"$ref":"`+refBase+`#/`))
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("schema of %s %s: %w", apiVersion, kind, err)
	}
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		return nil, fmt.Errorf("schema of %s %s: no properties", apiVersion, kind)
	}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}}
	required, _ := s["required"].([]any)
	s["required"] = append(required, "apiVersion", "kind", "metadata")
	return s, nil
}

// schemaFile names the schema of a kind as kubeconform's
// {{ .ResourceKind }}{{ .KindSuffix }}.json does: deployment-apps-v1.json,
// service-v1.json, scaledobject-keda-v1alpha1.json.
func schemaFile(apiVersion, kind string) string {
	group, version, found := strings.Cut(apiVersion, "/")
	suffix := "-" + strings.ToLower(strings.Split(group, ".")[0])
	if found {
		suffix += "-" + strings.ToLower(version)
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// strict makes a schema reject what the API server would not accept as
// written: objects get additionalProperties: false unless they declare their
// own or keep unknown fields, and int-or-string values accept both.
func strict(node any) {
	n, ok := node.(map[string]any)
	if !ok {
		return
	}
	_, hasProps := n["properties"]
	_, hasAdditional := n["additionalProperties"]
	preserve, _ := n["x-kubernetes-preserve-unknown-fields"].(bool)
	if hasProps && !hasAdditional && !preserve {
		n["additionalProperties"] = false
	}
	intOrString, _ := n["x-kubernetes-int-or-string"].(bool)
	if n["format"] == "int-or-string" || (intOrString && n["type"] != nil) {
		delete(n, "type")
		delete(n, "format")
		n["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	for _, k := range []string{"properties", "patternProperties", "definitions"} {
		named, _ := n[k].(map[string]any)
		for _, s := range named {
			strict(s)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf", "items"} {
		list, _ := n[k].([]any)
		for _, s := range list {
			strict(s)
		}
	}
	for _, k := range []string{"additionalProperties", "items", "not"} {
		strict(n[k])
	}
}

func writeJSON(path string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("schema %s: %w", path, err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}
