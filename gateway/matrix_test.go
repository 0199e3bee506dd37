package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestAuthorizationMatrix: every endpoint against anonymous, the owning
// customer, another customer and an admin.
func TestAuthorizationMatrix(t *testing.T) {
	s := newStack(t, options{})
	s.product("WATCH-42", 100, map[string]int{"east": 50})
	owner, _ := s.customer()
	other, _ := s.customer()
	var o orderJSON
	s.placeOrder(owner, "tok_ok", "WATCH-42", 1).json(t, &o)
	s.waitStatus(owner, o.ID, 30*time.Second, "CONFIRMED")
	var slow orderJSON
	s.placeOrder(owner, "tok_slow", "WATCH-42", 1).json(t, &slow)

	order := "/api/v1/orders/" + o.ID
	newProduct := func() any {
		return map[string]any{"sku": "NEW-" + strings.ToUpper(randomSuffix()), "name": "n", "brand": "b", "price_cents": 1}
	}
	orderBody := map[string]any{"items": []map[string]any{{"sku": "WATCH-42", "quantity": 1}}, "payment_method": "tok_ok"}
	type row struct {
		method, path string
		body         func() any
		// statuses for anonymous, owner, other customer, admin
		want [4]int
	}
	rows := []row{
		{"GET", "/api/v1/products", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/api/v1/products/WATCH-42", nil, [4]int{200, 200, 200, 200}},
		{"POST", "/api/v1/products", newProduct, [4]int{401, 403, 403, 201}},
		{"PATCH", "/api/v1/products/WATCH-42", func() any { return map[string]any{"name": "Watch"} }, [4]int{401, 403, 403, 200}},
		{"POST", "/api/v1/products/WATCH-42/stock", func() any { return map[string]any{"warehouse": "east", "delta": 1, "reason": "r"} }, [4]int{401, 403, 403, 200}},
		{"DELETE", "/api/v1/products/NOPE-1", nil, [4]int{401, 403, 403, 404}},
		{"GET", "/api/v1/me", nil, [4]int{401, 200, 200, 200}},
		{"POST", "/api/v1/orders", func() any { return orderBody }, [4]int{401, 202, 202, 403}},
		{"GET", "/api/v1/orders", nil, [4]int{401, 200, 200, 200}},
		{"GET", order, nil, [4]int{401, 200, 404, 200}},
		{"GET", order + "/events", nil, [4]int{401, 200, 404, 200}},
		{"POST", order + "/cancel", nil, [4]int{401, 409, 404, 409}},
		{"GET", "/api/v1/system/status", nil, [4]int{401, 403, 403, 200}},
		{"GET", "/api/v1/config", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/api/v1/openapi.json", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/healthz", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/readyz", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/metrics", nil, [4]int{200, 200, 200, 200}},
	}
	who := []string{"anonymous", "owner", "other customer", "admin"}
	tokens := []string{"", owner, other, s.admin}
	for _, r := range rows {
		for i, tok := range tokens {
			var body any
			if r.body != nil {
				body = r.body()
			}
			got := s.do(r.method, r.path, tok, body)
			if got.Status != r.want[i] {
				t.Errorf("%s %s as %s: %d, want %d: %s", r.method, r.path, who[i], got.Status, r.want[i], got.Body)
			}
		}
	}
	// The slow order, cancelled by another customer: 404; by its owner: 200.
	if r := s.do("POST", "/api/v1/orders/"+slow.ID+"/cancel", other, nil); r.Status != 404 {
		t.Errorf("other customer cancels: %d", r.Status)
	}
	if r := s.do("POST", "/api/v1/orders/"+slow.ID+"/cancel", owner, nil); r.Status != 200 {
		t.Errorf("owner cancels: %d %s", r.Status, r.Body)
	}
}

var suffix int

func randomSuffix() string {
	suffix++
	return strings.Repeat("A", suffix%5+1) + string(rune('A'+suffix%26))
}

func TestOperationsEndpoints(t *testing.T) {
	s := newStack(t, options{})
	var cfg struct {
		WSURL         string `json:"ws_url"`
		TemporalUIURL string `json:"temporal_ui_url"`
	}
	s.do("GET", "/api/v1/config", "", nil).json(t, &cfg)
	if cfg.WSURL == "" || cfg.TemporalUIURL == "" {
		t.Errorf("config %+v", cfg)
	}
	var ready struct {
		Status string
		Checks map[string]string
	}
	s.do("GET", "/readyz", "", nil).json(t, &ready)
	if ready.Status != "ready" || ready.Checks["temporal"] != "ok" || ready.Checks["postgres:orders"] != "ok" {
		t.Errorf("readyz %+v", ready)
	}
	var status struct {
		Components []struct {
			Name        string `json:"name"`
			Up          bool   `json:"up"`
			Backlog     *int64 `json:"backlog"`
			KafkaLag    *int64 `json:"kafka_consumer_lag"`
			Connections *int64 `json:"connections"`
		} `json:"components"`
		Outbox *struct {
			Unpublished int64 `json:"unpublished"`
		} `json:"outbox"`
	}
	// The workers poll within a moment of starting.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.do("GET", "/api/v1/system/status", s.admin, nil).json(t, &status)
		up := map[string]bool{}
		hubLag := false
		for _, c := range status.Components {
			up[c.Name] = c.Up
			if c.Name == "ws hub" && c.KafkaLag != nil && c.Connections != nil {
				hubLag = true
			}
		}
		if up["gateway"] && up["order worker"] && up["product worker"] && up["payment worker"] && up["ws hub"] && up["outbox relay"] && hubLag && status.Outbox != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("system status: %+v", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := s.do("GET", "/metrics", "", nil); !strings.Contains(string(r.Body), "ordersaga_http_request_duration_seconds") {
		t.Error("/metrics lacks the request histogram")
	}
	if r := s.do("GET", "/api/v1/nope", "", nil); r.Status != 404 || r.errCode() != "not_found" {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
	r := s.do("GET", "/healthz", "", nil, "X-Request-ID", "trace-123")
	if r.Header.Get("X-Request-ID") != "trace-123" {
		t.Errorf("X-Request-ID not echoed: %q", r.Header.Get("X-Request-ID"))
	}
}

// TestPanicIsA500WithoutDetails: a handler that panics answers 500 in the
// error shape with the request id, and no stack or panic text.
func TestPanicIsA500WithoutDetails(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.engine.GET("/boom", func(*gin.Context) { panic("secret internal detail") })
	req, _ := http.NewRequest("GET", s.url+"/boom", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code, Message string
			RequestID     string `json:"request_id"`
		}
	}
	r := response{Status: resp.StatusCode}
	buf := new(strings.Builder)
	_, _ = bufCopy(buf, resp)
	r.Body = []byte(buf.String())
	r.json(t, &body)
	if resp.StatusCode != 500 || body.Error.Code != "internal" || body.Error.RequestID == "" || strings.Contains(buf.String(), "secret") || strings.Contains(buf.String(), "goroutine") {
		t.Errorf("panic answered %d %s", resp.StatusCode, buf)
	}
}
