package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// memEvents is the orders schema as the hub reads it, in memory: the
// fuzz target exercises frames by the thousand per second, which a
// database round trip per frame would turn into dozens.
type memEvents struct {
	owner  uuid.UUID
	orders map[uuid.UUID][]order.OrderEvent
}

func (m memEvents) Events(_ context.Context, id uuid.UUID, after int) ([]order.OrderEvent, error) {
	var out []order.OrderEvent
	for _, e := range m.orders[id] {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m memEvents) Owner(_ context.Context, id uuid.UUID) (uuid.UUID, error) {
	if _, ok := m.orders[id]; !ok {
		return uuid.Nil, apperr.New(apperr.NotFound, "order not found")
	}
	return m.owner, nil
}

func (memEvents) Ping(context.Context) error { return nil }

// frameHub is one hub per fuzzing process, with a customer who owns two
// orders: "mine", which seeds name, and "probe", which the target
// subscribes to after each fuzzed frame to see that the connection still
// answers.
type frameHub struct {
	url, customer, admin string
	mine, probe          uuid.UUID
}

var (
	frameHubOnce sync.Once
	theFrameHub  frameHub
)

func newFrameHub(f *testing.F) frameHub {
	frameHubOnce.Do(func() {
		customer, mine, probe := uuid.New(), uuid.MustParse("7f1c1a52-8a3e-4c59-9b0e-2b1f4c7d9e01"), uuid.New()
		events := memEvents{owner: customer, orders: map[uuid.UUID][]order.OrderEvent{}}
		for _, id := range []uuid.UUID{mine, probe} {
			for seq, st := range []order.Status{"PENDING", "RESERVED"} {
				events.orders[id] = append(events.orders[id], order.OrderEvent{OrderID: id, CustomerID: customer, Seq: seq + 1, Status: st}.Complete())
			}
		}
		tokens := authn.New(strings.Repeat("f", 32), time.Hour, time.Now)
		hub := ws.New(ws.Deps{Events: events, Tokens: tokens, Registry: prometheus.NewRegistry(), Log: zap.NewNop()}, ws.Settings{})
		srv := httptest.NewServer(hub) // lives as long as the fuzzing process
		ct, _, err1 := tokens.Issue(authn.Claims{UserID: customer, Role: "customer"})
		at, _, err2 := tokens.Issue(authn.Claims{UserID: uuid.New(), Role: "admin"})
		if err := errors.Join(err1, err2); err != nil {
			f.Fatal(err)
		}
		theFrameHub = frameHub{url: "ws" + strings.TrimPrefix(srv.URL, "http"), customer: ct, admin: at, mine: mine, probe: probe}
	})
	return theFrameHub
}

// FuzzFrame sends one client frame, valid or not, on a fresh connection,
// then a subscription to the probe order. The hub must not panic, must
// answer the probe (the connection stays open) unless the frame is over
// the size limit, must send only well-formed error and event messages,
// at most one error per frame, and an error for every frame that is not
// a subscribe or unsubscribe object in UTF-8 JSON text.
func FuzzFrame(f *testing.F) {
	h := newFrameHub(f)
	mine := h.mine.String()
	for _, s := range []string{
		`{"type":"subscribe","order_id":"` + mine + `","after_seq":0}`,
		`{"type":"subscribe","order_id":"` + mine + `","after_seq":1}`,
		`{"type":"subscribe","order_id":"` + mine + `"}`,
		`{"type":"subscribe","scope":"mine"}`,
		`{"type":"subscribe","scope":"all"}`,
		`{"type":"unsubscribe","order_id":"` + mine + `"}`,
		`{"type":"unsubscribe","scope":"all"}`,
		`{"type":"subscribe","order_id":"` + mine + `","after_seq":-1}`,
		`{"type":"subscribe","order_id":"` + mine + `","after_seq":1e99}`,
		`{"type":"subscribe","order_id":"` + mine + `","after_seq":"1"}`,
		`{"type":"subscribe","order_id":"` + uuid.NewString() + `","after_seq":0}`,
		`{"type":"subscribe","order_id":"not-a-uuid"}`,
		`{"type":"subscribe","order_id":"a\u0000b"}`,
		`{"type":"subscribe","scope":"everything"}`,
		`{"type":"subscribe"}`,
		`{"type":"dance"}`,
		`{"type":1}`,
		`{"TYPE":"subscribe","Scope":"mine"}`,
		`{"type":"subscribe","type":"unsubscribe","scope":"mine"}`,
		`{not json`, `null`, `[]`, `"subscribe"`, `0`, ``, ` `, "{\"type\":\"\xff\"}", "\xc3\x28",
		strings.Repeat(`{"a":`, 100) + strings.Repeat(`}`, 100),
	} {
		f.Add(false, false, []byte(s))
		f.Add(false, true, []byte(s))
	}
	f.Add(true, false, []byte(`{"type":"subscribe","scope":"mine"}`))
	f.Add(false, false, bytes.Repeat([]byte("x"), 5000))

	probe := map[string]any{"type": "subscribe", "order_id": h.probe, "after_seq": 0}
	f.Fuzz(func(t *testing.T, binary, admin bool, frame []byte) {
		tok := h.customer
		if admin {
			tok = h.admin
		}
		c, _, err := websocket.DefaultDialer.Dial(h.url+"?token="+tok, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		kind := websocket.TextMessage
		if binary {
			kind = websocket.BinaryMessage
		}
		if err := c.WriteMessage(kind, frame); err != nil {
			t.Fatalf("send the frame: %v", err)
		}
		if err := c.WriteJSON(probe); err != nil && len(frame) <= 4096 {
			t.Fatalf("send the probe: %v", err)
		}
		var errs []map[string]any
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := c.ReadMessage()
			if len(frame) > 4096 {
				var ce *websocket.CloseError
				if err != nil && errors.As(err, &ce) && ce.Code == websocket.CloseMessageTooBig {
					return
				}
				if err != nil {
					t.Fatalf("a frame over the limit: %v, want close 1009", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("the connection ended after %q: %v", frame, err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("not JSON: %q", data)
			}
			switch m["type"] {
			case "error":
				if code, _ := m["code"].(string); code == "" || m["message"] == "" || m["message"] == nil {
					t.Fatalf("error frame without code or message: %s", data)
				}
				errs = append(errs, m)
			case "order.status_changed":
				if m["order_id"] == h.probe.String() {
					checkAnswer(t, binary, admin, frame, errs)
					return
				}
			default:
				t.Fatalf("unexpected message %s", data)
			}
		}
	})
}

// checkAnswer checks the error frames the hub sent for one frame.
func checkAnswer(t *testing.T, binary, admin bool, frame []byte, errs []map[string]any) {
	t.Helper()
	if len(errs) > 1 {
		t.Fatalf("%q: %d error frames, want at most one: %v", frame, len(errs), errs)
	}
	if binary || !utf8.Valid(frame) || !json.Valid(frame) {
		if len(errs) != 1 || errs[0]["code"] != apperr.InvalidJSON {
			t.Fatalf("%q (binary %v): %v, want one invalid_json error", frame, binary, errs)
		}
		return
	}
	if !looksLikeRequest(frame) && len(errs) != 1 {
		t.Fatalf("%q: %v, want an error frame", frame, errs)
	}
	// A customer asking for every order is refused.
	var v struct {
		Type, Scope string
		OrderID     string `json:"order_id"`
	}
	if !admin && json.Unmarshal(frame, &v) == nil && v.Type == "subscribe" && v.OrderID == "" && v.Scope == "all" && len(errs) == 0 {
		t.Fatalf("%q: a customer subscribed to every order", frame)
	}
}

// looksLikeRequest: the frame is a JSON object whose type, under any key
// that encoding/json would match, may be "subscribe" or "unsubscribe".
// Anything else must get an error frame.
func looksLikeRequest(frame []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(frame, &m) != nil {
		return false
	}
	for k, v := range m {
		if strings.EqualFold(k, "type") {
			var s string
			if json.Unmarshal(v, &s) == nil && (s == "subscribe" || s == "unsubscribe") {
				return true
			}
		}
	}
	return false
}
