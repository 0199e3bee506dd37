package gateway_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// directives splits a Content-Security-Policy into its directives.
func directives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = f[1:]
		}
	}
	return out
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestSecurityHeaders(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	var cfg struct {
		WSURL string `json:"ws_url"`
	}
	s.do("GET", "/api/v1/config", "", nil).json(t, &cfg)
	hub, err := url.Parse(cfg.WSURL)
	if err != nil || hub.Host == "" {
		t.Fatalf("ws_url %q", cfg.WSURL)
	}

	// Every page of the web app keeps the strict policy: everything from
	// the gateway itself, inline code only by its hash, never framed.
	hash := regexp.MustCompile(`^'sha256-[A-Za-z0-9+/]{43}='$`)
	pages := map[string]response{}
	for _, path := range []string{"/", "/admin", "/admin/system"} {
		page := s.do("GET", path, "", nil)
		pages[path] = page
		if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", path, page.Status, page.Header.Get("Content-Type"))
		}
		csp := page.Header.Get("Content-Security-Policy")
		d := directives(csp)
		for name, want := range map[string]string{
			"default-src":     "'self'",
			"frame-ancestors": "'none'",
			"object-src":      "'none'",
			"base-uri":        "'none'",
			"connect-src":     hub.Scheme + "://" + hub.Host,
		} {
			if !has(d[name], want) {
				t.Errorf("%s: CSP %s lacks %s: %s", path, name, want, csp)
			}
		}
		if strings.Contains(csp, "'unsafe-inline'") || strings.Contains(csp, "'unsafe-eval'") || strings.Contains(csp, " *") {
			t.Errorf("%s: CSP allows any inline code or any source: %s", path, csp)
		}
		// Scripts and styles come from the gateway, or are inline code
		// allowed by its hash: nothing else.
		for _, dir := range []string{"script-src", "style-src"} {
			if len(d[dir]) == 0 || d[dir][0] != "'self'" {
				t.Errorf("%s: %s is not 'self' first: %v", path, dir, d[dir])
			}
			for _, src := range d[dir][1:] {
				if !hash.MatchString(src) && src != "'unsafe-hashes'" {
					t.Errorf("%s: %s allows %s", path, dir, src)
				}
			}
		}
		if cc := page.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache (the page must follow its scripts after a deploy)", path, cc)
		}
	}

	for _, r := range []struct {
		what string
		resp response
	}{
		{"the page", pages["/"]},
		{"the admin page", pages["/admin"]},
		{"a script", s.do("GET", "/assets/app.js", "", nil)},
		{"a product list", s.do("GET", "/api/v1/products", "", nil)},
		{"an error", s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "a@example.com", "password": "wrong-password"})},
		{"no such route", s.do("GET", "/nope", "", nil)},
		{"a preflight", s.do("OPTIONS", "/api/v1/orders", "", nil, "Origin", "https://elsewhere.example", "Access-Control-Request-Method", "POST")},
		{"the openapi document", s.do("GET", "/api/v1/openapi.json", "", nil)},
	} {
		h := r.resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", r.what, h.Get("X-Content-Type-Options"))
		}
		if rp := h.Get("Referrer-Policy"); rp != "no-referrer" && rp != "strict-origin-when-cross-origin" {
			t.Errorf("%s: Referrer-Policy %q", r.what, rp)
		}
		if !has(directives(h.Get("Content-Security-Policy"))["frame-ancestors"], "'none'") {
			t.Errorf("%s: Content-Security-Policy %q lacks frame-ancestors 'none'", r.what, h.Get("Content-Security-Policy"))
		}
		if !strings.HasSuffix(r.what, "page") && !has(directives(h.Get("Content-Security-Policy"))["default-src"], "'none'") {
			t.Errorf("%s: an API answer may load things: %q", r.what, h.Get("Content-Security-Policy"))
		}
	}
}

// preflight is what a browser asks before a cross-origin POST with a token.
func preflight(c *peer, origin string) response {
	c.t.Helper()
	return c.do("OPTIONS", "/api/v1/orders", nil, "Origin", origin, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
}

func TestCORSIsSameOriginByDefault(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	c := peerAt(t, s.url, "127.0.0.1")
	for _, origin := range []string{"https://evil.example", "null", s.url + ".evil.example"} {
		if r := preflight(c, origin); r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from %s: %d %v", origin, r.Status, r.Header)
		}
		if r := c.do("GET", "/api/v1/products", nil, "Origin", origin); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET from %s: %d, Access-Control-Allow-Origin %q", origin, r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// The shop page's own requests (same origin, Origin sent on POST) work.
	if r := c.do("POST", "/api/v1/auth/login", map[string]string{"email": "a@example.com", "password": "wrong-password"}, "Origin", s.url); r.Status != 401 {
		t.Errorf("same-origin POST: %d %s", r.Status, r.Body)
	}
}

func TestCORSAllowsConfiguredOrigins(t *testing.T) {
	const allowed = "https://admin.example.com"
	base, _ := gatewayWith(t, map[string]string{"CORS_ALLOWED_ORIGINS": allowed + ",http://127.0.0.1:3000"})
	c := peerAt(t, base, "127.0.0.1")

	r := preflight(c, allowed)
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("preflight from %s: %d %v", allowed, r.Status, r.Header)
	}
	methods := strings.ToUpper(r.Header.Get("Access-Control-Allow-Methods"))
	headers := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"GET", "POST", "PATCH", "DELETE"} {
		if !strings.Contains(methods, want) {
			t.Errorf("Access-Control-Allow-Methods %q lacks %s", methods, want)
		}
	}
	for _, want := range []string{"authorization", "content-type", "idempotency-key"} {
		if !strings.Contains(headers, want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", headers, want)
		}
	}
	if r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials are allowed: the API takes bearer tokens, not cookies")
	}

	r = c.do("GET", "/api/v1/products", nil, "Origin", allowed)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != allowed ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Expose-Headers")), "x-request-id") {
		t.Errorf("GET from %s: %d %v", allowed, r.Status, r.Header)
	}

	// A cache must not give an allowed origin the answer another got.
	if r := c.do("GET", "/api/v1/products", nil); !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("an answer without CORS headers lacks Vary: Origin: %v", r.Header)
	}

	for _, origin := range []string{"https://evil.example", "https://admin.example.com.evil.example", "http://admin.example.com"} {
		r := preflight(c, origin)
		if r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from %s: %d %v", origin, r.Status, r.Header)
		}
		if r.Status == 204 || r.errCode() == "" {
			t.Errorf("preflight from %s answered %d %s, want an API error", origin, r.Status, r.Body)
		}
	}
}

// The Temporal UI calls the codec endpoints from the operator's browser,
// with the codec session cookie: its origin may, there and only there.
func TestCORSLetsTheTemporalUICallTheCodec(t *testing.T) {
	const ui = "http://127.0.0.1:8233"
	base, _ := gatewayWith(t, map[string]string{"TEMPORAL_UI_URL": ui + "/namespaces/default/workflows"})
	c := peerAt(t, base, "127.0.0.1")
	codecPreflight := func(origin string) response {
		return c.do("OPTIONS", "/api/v1/codec/decode", nil, "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type,x-namespace")
	}
	r := codecPreflight(ui)
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != ui || r.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "x-namespace") {
		t.Fatalf("the UI's preflight to the codec: %d %v", r.Status, r.Header)
	}
	// The answer (here: no session, 401) is readable by the UI, which then
	// shows its codec server as failing rather than a network error.
	r = c.do("POST", "/api/v1/codec/decode", map[string]any{"payloads": []any{}}, "Origin", ui, "X-Namespace", "default")
	if r.Status != 401 || r.Header.Get("Access-Control-Allow-Origin") != ui || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("the UI's decode without a session: %d %v", r.Status, r.Header)
	}
	// Other origins get nothing at the codec, and the UI nothing elsewhere.
	if r := codecPreflight("https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin's preflight to the codec: %d %v", r.Status, r.Header)
	}
	if r := preflight(c, ui); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("the UI's preflight to the orders: %d %v", r.Status, r.Header)
	}
}
