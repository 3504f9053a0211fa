package kallahttp

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kalla-dev/kalla"
)

// openAPISpec is the part of openapi.yaml these tests read.
type openAPISpec struct {
	// Paths holds operations and the parameters common to a path's.
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Required   []string                  `yaml:"required"`
			Properties map[string]map[string]any `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func readSpec(t *testing.T) openAPISpec {
	t.Helper()
	var spec openAPISpec
	if err := yaml.Unmarshal(OpenAPI(), &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return spec
}

// schemaKeywords are the OpenAPI 3.0 schema keywords the document uses.
var schemaKeywords = map[string]bool{
	"type": true, "format": true, "description": true, "enum": true, "items": true, "$ref": true,
	"allOf": true, "oneOf": true, "properties": true, "required": true, "additionalProperties": true,
	"default": true, "minimum": true, "maximum": true, "minItems": true, "maxItems": true,
	"nullable": true, "pattern": true,
}

// jsonFields lists the JSON names of v's fields, and those it always
// writes (no omitempty or omitzero).
func jsonFields(v any) (all, always []string) {
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		tag := rt.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

// The schemas of what the API reads and writes name exactly the fields of
// the Go types behind them, so that a field added to a job, a rule, a
// result or a callback cannot go undocumented; a required property is one
// the type always writes.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	spec := readSpec(t)
	for _, tc := range []struct {
		schema string
		v      any
		// reads: the API reads it, so required means "must be given",
		// not "always written".
		reads bool
	}{
		{"JobRequest", kalla.Job{}, true},
		{"Source", kalla.SourceSpec{}, true},
		{"Filter", kalla.Filter{}, true},
		{"Rule", kalla.Rule{}, true},
		{"Exclusive", kalla.Exclusive{}, true},
		{"RuleCount", kalla.RuleCount{}, false},
		{"Complete", kalla.Result{}, false},
		{"Progress", kalla.Progress{}, false},
		{"ErrorCallback", kalla.ErrorReport{}, false},
		{"Error", ErrorBody{}, false},
	} {
		s, ok := spec.Components.Schemas[tc.schema]
		if !ok {
			t.Errorf("schema %s is missing", tc.schema)
			continue
		}
		var documented []string
		for p := range s.Properties {
			documented = append(documented, p)
		}
		slices.Sort(documented)
		all, always := jsonFields(tc.v)
		if !slices.Equal(documented, all) {
			t.Errorf("schema %s has properties %v; %T has %v", tc.schema, documented, tc.v, all)
		}
		for name, prop := range s.Properties {
			for k := range prop {
				// A comma in an unquoted flow-style description splits it
				// into a bogus keyword.
				if !schemaKeywords[k] {
					t.Errorf("schema %s, property %s: %q is not a schema keyword (quote the description?)", tc.schema, name, k)
				}
			}
		}
		if tc.reads {
			continue
		}
		required := slices.Clone(s.Required)
		slices.Sort(required)
		if !slices.Equal(required, always) {
			t.Errorf("schema %s requires %v; %T always writes %v", tc.schema, required, tc.v, always)
		}
	}
}

// Error.code lists exactly the API's error codes.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `yaml:"enum"`
						} `yaml:"code"`
					} `yaml:"properties"`
				} `yaml:"Error"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := slices.Sorted(slices.Values(doc.Components.Schemas.Error.Properties.Code.Enum))
	var codes []string
	for c := range apiStatus {
		codes = append(codes, string(c))
	}
	slices.Sort(codes)
	if !slices.Equal(documented, codes) {
		t.Errorf("Error.code documents %v; the API answers %v", documented, codes)
	}
}

// POST /api/jobs documents the dry_run parameter with the values it takes,
// and the answers only a dry run gives.
func TestOpenAPIDryRun(t *testing.T) {
	t.Parallel()
	node := readSpec(t).Paths["/api/jobs"]["post"]
	var post struct {
		Parameters []struct {
			Name   string `yaml:"name"`
			In     string `yaml:"in"`
			Schema struct {
				Enum []string `yaml:"enum"`
			} `yaml:"schema"`
		} `yaml:"parameters"`
		Responses map[string]any `yaml:"responses"`
	}
	if err := node.Decode(&post); err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, p := range post.Parameters {
		if p.Name == "dry_run" && p.In == "query" {
			values = p.Schema.Enum
		}
	}
	slices.Sort(values)
	if want := []string{"0", "1", "false", "true"}; !slices.Equal(values, want) {
		t.Errorf("dry_run documents %v, want %v", values, want)
	}
	for _, code := range []string{"200", "400", "401", "422", "429", "503"} {
		if _, ok := post.Responses[code]; !ok {
			t.Errorf("POST /api/jobs does not document %s", code)
		}
	}
}
