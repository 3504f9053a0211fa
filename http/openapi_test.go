package kallahttp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// openAPIOperations lists "METHOD /path" for every operation under paths:
// in the document. The document's layout is fixed (two spaces per level), so
// a line reader suffices and the module needs no YAML library.
func openAPIOperations(t *testing.T, doc []byte) []string {
	t.Helper()
	var ops []string
	inPaths, path := false, ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && len(line) > 4 && line[:4] == "    " && line[4] != ' ':
			key := strings.TrimSuffix(strings.TrimSpace(line), ":")
			if slices.Contains([]string{"get", "post", "put", "patch", "delete", "head", "options"}, key) {
				ops = append(ops, strings.ToUpper(key)+" "+path)
			}
		}
	}
	if len(ops) == 0 {
		t.Fatal("no operations found in openapi.yaml")
	}
	slices.Sort(ops)
	return ops
}

// TestOpenAPIMatchesRoutes keeps openapi.yaml true: every route the server
// registers is documented, every documented operation is served (the mux
// finds a handler for it), and nothing else is.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	documented := openAPIOperations(t, OpenAPI())
	var served []string
	for _, rt := range routes {
		served = append(served, rt.method+" "+rt.path)
	}
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml documents\n  %s\nbut the server serves\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}

	srv, err := NewServer(Config{Validator: testRunner(), Store: newMemStore(), Queue: &memQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	routed := func(method, path string) bool {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("{}")))
		var e ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		return e.Code != string(codeNoSuchRoute) && e.Code != string(codeMethodNotAllowed)
	}
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{run_id}", kalla.NewRunID())
		if !routed(method, path) {
			t.Errorf("%s is documented but not served", op)
		}
	}
	for _, op := range []string{"PUT /api/jobs", "PATCH /api/jobs/{run_id}", "POST /health", "POST /api/cluster", "GET /api/jobs/{run_id}/result"} {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{run_id}", kalla.NewRunID())
		if routed(method, path) {
			t.Errorf("%s is served but not documented", op)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	resp := do(t, "GET", b.url+"/api/openapi.yaml", "", "", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("answer %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
