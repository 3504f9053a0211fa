package kallahttp

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the API; TestOpenAPIMatchesRoutes keeps it true.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3 document (YAML).
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPIDoc)
}
