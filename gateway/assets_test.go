package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/gateway"
)

// TestWebAssets: every script and stylesheet that the pages (and their
// modules) name is served, with its content type and cache policy; a
// browser whose copy is current gets a 304; nothing else is served.
func TestWebAssets(t *testing.T) {
	h := gateway.New(gateway.Deps{}, gateway.Settings{}).Handler()
	get := func(target string, header ...string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		checkContract(t, req, nil, w.Code, w.Header(), w.Body.Bytes())
		return w
	}

	named := map[string]bool{}
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"|from "(/assets/[^"]+)"`)
	find := func(body string) {
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			named[m[1]+m[2]] = true
		}
	}
	for _, page := range []string{"/", "/admin", "/admin/system"} {
		find(get(page).Body.String())
	}
	for p := range named { // the modules' imports
		if strings.HasSuffix(p, ".js") && !strings.Contains(p, "/vendor/") {
			find(get(p).Body.String())
		}
	}
	for _, want := range []string{"/assets/app.css", "/assets/app.js", "/assets/shop.js", "/assets/admin.js", "/assets/system.js",
		"/assets/vendor/uplot-1.6.32/uPlot.iife.min.js", "/assets/vendor/uplot-1.6.32/uPlot.min.css"} {
		if !named[want] {
			t.Errorf("no page loads %s", want)
		}
	}

	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for p := range named {
		w := get(p)
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("%s: %d, %d bytes", p, w.Code, w.Body.Len())
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != types[path.Ext(p)] {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		want := "no-cache"
		if strings.HasPrefix(p, "/assets/vendor/") {
			want = "public, max-age=31536000, immutable"
		}
		if cc := w.Header().Get("Cache-Control"); cc != want {
			t.Errorf("%s: Cache-Control %q, want %q", p, cc, want)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: not nosniff", p)
		}
		etag := w.Header().Get("ETag")
		if again := get(p, "If-None-Match", etag); etag == "" || again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s again with If-None-Match %q: %d, %d bytes", p, etag, again.Code, again.Body.Len())
		}
		if other := get(p, "If-None-Match", `"stale"`); other.Code != 200 {
			t.Errorf("%s with a stale ETag: %d", p, other.Code)
		}
	}

	// The vendored library's licence is served beside it.
	if w := get("/assets/vendor/uplot-1.6.32/LICENSE"); w.Code != 200 || !strings.Contains(w.Body.String(), "The MIT License") ||
		w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("the uPlot licence: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Only the indexed files: not the pages' sources, not the Go code,
	// not a folder, not a path that climbs out.
	for _, p := range []string{"/assets/index.html", "/assets/nope.js", "/assets/vendor", "/assets/vendor/uplot-1.6.32/nope.js",
		"/assets/vendor/..%2F..%2Fweb.go/x", "/assets/..%2Fweb.go", "/assets/vendor/uplot-1.6.32/..%2F..%2Findex.html"} {
		if w := get(p); w.Code != 404 {
			t.Errorf("%s: %d %s", p, w.Code, w.Body)
		}
	}
}
