package ws_test

import (
	"context"
	"encoding/json"
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
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
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

// TestClientCloseIsAnswered: a client that closes gets the close frame
// back with its code, after any event already on its way, and leaves.
func TestClientCloseIsAnswered(t *testing.T) {
	hub, url, tok := bareHub(t, ws.Settings{})
	c, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]string{"type": "subscribe", "scope": "all"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the subscription", 5*time.Second, func() bool { return hub.Stats().AllSubs == 1 })
	for seq := 1; seq <= 3; seq++ {
		dispatch(hub, uuid.New(), seq)
	}
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // an event queued before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("after closing, the client saw %v, want its close 1000 answered", err)
		}
		break
	}
	testkit.WaitFor(t, "the connection to leave", 5*time.Second, func() bool { return hub.Stats().Connections == 0 })
}

// TestEventsFlowAfterClientPings: a client that pings the hub gets its
// pongs, and events go on reaching it long after (a pong must not leave
// the socket with a write deadline that later events would miss).
func TestEventsFlowAfterClientPings(t *testing.T) {
	hub, url, tok := bareHub(t, ws.Settings{})
	c, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pongs := make(chan struct{}, 10)
	c.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
	if err := c.WriteJSON(map[string]string{"type": "subscribe", "scope": "all"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the subscription", 5*time.Second, func() bool { return hub.Stats().AllSubs == 1 })
	dispatch(hub, uuid.New(), 1)
	read := func() error {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage() // the pong handler runs within
		return err
	}
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	dispatch(hub, uuid.New(), 1)
	if err := read(); err != nil {
		t.Fatalf("an event 1.5 s after a ping: %v", err)
	}
	if len(pongs) != 1 {
		t.Errorf("%d pongs for one ping", len(pongs))
	}
}

// dispatch hands the hub an event, as its Kafka consumer does.
func dispatch(hub *ws.Hub, id uuid.UUID, seq int) {
	e := order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: seq, Status: order.Pending, OccurredAt: time.Now()}.Complete()
	data, _ := json.Marshal(e)
	hub.Dispatch(e, data)
}

// TestProfilesOnlyWhenAsked: the ops port serves Go's profiles only when
// the settings say so (DEBUG_PPROF), since in compose and Kubernetes it
// listens on every interface of the network.
func TestProfilesOnlyWhenAsked(t *testing.T) {
	tokens := authn.New(strings.Repeat("p", 32), time.Hour, time.Now)
	for _, on := range []bool{false, true} {
		hub := ws.New(ws.Deps{Tokens: tokens, Registry: prometheus.NewRegistry(), Log: zap.NewNop()}, ws.Settings{Topic: "t", Profiling: on})
		rec := httptest.NewRecorder()
		hub.OpsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
			t.Errorf("profiling %v: /debug/pprof/ answered %d, want %d", on, rec.Code, want)
		}
	}
}
