package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the reference of every route in routes(): what the routes
// take and answer. openapi_test.go holds the two together: a route without
// an operation (or an operation without a route) fails it, and every route
// is called against a real server with its requests and answers validated
// against this document. docs/API.md is written from it.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPIPath is where the API serves its reference.
const OpenAPIPath = "/v1/openapi.json"

// getOpenAPI serves the reference: GET /v1/openapi.json.
func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request, _ []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(openAPI)
}
