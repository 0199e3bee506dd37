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
