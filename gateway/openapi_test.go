package gateway_test

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/gateway"
)

// TestOpenAPIMatchesRoutes fails when a gin route is missing from the
// OpenAPI document or the document lists an operation no route serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	r := s.do("GET", "/api/v1/openapi.json", "", nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:(\w+)`)
	served := map[string]bool{}
	for _, rt := range gateway.New(gateway.Deps{}, gateway.Settings{}).Handler().Routes() {
		served[rt.Method+" "+param.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("routes not in openapi.json: %v; operations no route serves: %v", missing, extra)
	}
	if len(served) < 20 {
		t.Errorf("only %d routes", len(served))
	}
}

// TestOpenAPIDocumentIsValid checks openapi.json against the OpenAPI 3.1
// schema, so that a hand edit that breaks the document fails here rather
// than in every test's contract check. (Style and consistency are
// Spectral's: make spectral.)
func TestOpenAPIDocumentIsValid(t *testing.T) {
	v, err := contractValidator()
	if err != nil {
		t.Fatal(err)
	}
	contract.mu.Lock()
	ok, errs := v.ValidateDocument()
	contract.mu.Unlock()
	for _, e := range errs {
		t.Errorf("openapi.json: %s", describe("document", 0, "schema", e))
	}
	if !ok && len(errs) == 0 {
		t.Error("openapi.json is not a valid OpenAPI 3.1 document")
	}
}
