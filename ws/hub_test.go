package ws_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/ws"
)

// bareHub is a hub with no Kafka and no database: enough for the
// connection-level behaviour these tests check.
func bareHub(t *testing.T, s ws.Settings) (*ws.Hub, string, string) {
	t.Helper()
	tokens := authn.New(strings.Repeat("h", 32), time.Hour, time.Now)
	hub := ws.New(ws.Deps{Tokens: tokens, Registry: prometheus.NewRegistry(), Log: testkit.Logger()}, s)
	srv := httptest.NewServer(hub)
	t.Cleanup(srv.Close)
	tok, _, err := tokens.Issue(authn.Claims{UserID: uuid.New(), Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return hub, "ws" + strings.TrimPrefix(srv.URL, "http"), tok
}

func TestOriginCheck(t *testing.T) {
	_, url, tok := bareHub(t, ws.Settings{AllowedOrigins: []string{"https://shop.example.com"}})
	for origin, ok := range map[string]bool{"https://shop.example.com": true, "https://evil.example.com": false, "": true} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(url+"?token="+tok, h)
		if ok != (err == nil) {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("origin %q: connected=%v (HTTP %d)", origin, err == nil, status)
		}
		if c != nil {
			c.Close()
		}
	}
	// Without a list, the same host name is accepted on any port, others are not.
	_, url, tok = bareHub(t, ws.Settings{})
	for origin, ok := range map[string]bool{"http://127.0.0.1:8080": true, "http://elsewhere.example:8080": false} {
		c, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, http.Header{"Origin": []string{origin}})
		if ok != (err == nil) {
			t.Errorf("default origin check, %q: connected=%v", origin, err == nil)
		}
		if c != nil {
			c.Close()
		}
	}
}

func TestPingsAndGracefulShutdown(t *testing.T) {
	hub, url, tok := bareHub(t, ws.Settings{PingInterval: 50 * time.Millisecond})
	c, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pings atomic.Int64
	c.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	time.Sleep(400 * time.Millisecond)
	if pings.Load() < 3 {
		t.Errorf("%d pings in 400 ms at a 50 ms interval", pings.Load())
	}
	// Answering pings keeps the connection open past the pong deadline.
	if hub.Stats().Connections != 1 {
		t.Fatalf("connection dropped while answering pings")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hub.Shutdown(ctx)
	var ce *websocket.CloseError
	select {
	case err := <-readErr:
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("on shutdown the client saw %v, want close 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no close frame on shutdown")
	}
	// A hub that is shutting down turns new clients away with a close frame.
	c2, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, nil)
	if err == nil {
		_, _, err = c2.ReadMessage()
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("a client connecting during shutdown saw %v", err)
		}
		c2.Close()
	}
}
