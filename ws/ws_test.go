package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// client is a websocket client as a browser would use it.
type client struct {
	t  testing.TB
	ws *websocket.Conn
}

func dial(t testing.TB, url, token string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url+"?token="+token, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

type message struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	EventID string `json:"event_id"`
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
}

// next reads one message, or returns an error when none comes in time.
func (c *client) next(within time.Duration) (message, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(within))
	var m message
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

// eventsUntil reads events until the order reaches a terminal status.
func (c *client) eventsUntilTerminal(within time.Duration) []message {
	c.t.Helper()
	var out []message
	deadline := time.Now().Add(within)
	for {
		m, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("after %v: %v", out, err)
		}
		if m.Type != "order.status_changed" {
			c.t.Fatalf("unexpected message %+v", m)
		}
		out = append(out, m)
		if order.Status(m.Status).Terminal() {
			return out
		}
	}
}

// quiet asserts that nothing more arrives for a while.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	if m, err := c.next(d); err == nil {
		c.t.Errorf("unexpected extra message %+v", m)
	}
}

func statuses(ms []message) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%d:%s", m.Seq, m.Status))
	}
	return strings.Join(s, " ")
}

func TestOrderEventsArriveLiveInOrder(t *testing.T) {
	sys := system.Start(t, system.Options{})
	sys.Product("WATCH-42", 1000, 10)
	tok, _ := sys.Customer()
	id := sys.PlaceOrder(tok, "WATCH-42", 1, "tok_ok")
	c := dial(t, sys.HubURL, tok)
	c.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": 0})
	got := c.eventsUntilTerminal(30 * time.Second)
	if statuses(got) != "1:PENDING 2:RESERVED 3:AUTHORIZED 4:CONFIRMED" {
		t.Errorf("received %s", statuses(got))
	}
	for _, m := range got {
		if m.EventID != fmt.Sprintf("%s:%d", id, m.Seq) || m.OrderID != id.String() {
			t.Errorf("event %+v", m)
		}
	}
	c.quiet(500 * time.Millisecond)
}

// TestReconnectWithAfterSeqMissesNothing: a client that drops after
// RESERVED and comes back with after_seq gets each missing event once.
func TestReconnectWithAfterSeqMissesNothing(t *testing.T) {
	sys := system.Start(t, system.Options{SlowDelay: 1500 * time.Millisecond})
	sys.Product("WATCH-42", 1000, 10)
	tok, _ := sys.Customer()
	id := sys.PlaceOrder(tok, "WATCH-42", 1, "tok_slow")

	first := dial(t, sys.HubURL, tok)
	first.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": 0})
	var seen []message
	for len(seen) < 2 {
		m, err := first.next(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, m)
	}
	first.ws.Close()
	if statuses(seen) != "1:PENDING 2:RESERVED" {
		t.Fatalf("before the drop: %s", statuses(seen))
	}
	sys.WaitStatus(tok, id, 30*time.Second, "CONFIRMED")

	second := dial(t, sys.HubURL, tok)
	second.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": seen[len(seen)-1].Seq})
	rest := second.eventsUntilTerminal(10 * time.Second)
	if statuses(rest) != "3:AUTHORIZED 4:CONFIRMED" {
		t.Errorf("after reconnecting: %s", statuses(rest))
	}
	second.quiet(500 * time.Millisecond)
}

func TestSubscriptionsAreAuthorized(t *testing.T) {
	sys := system.Start(t, system.Options{})
	sys.Product("WATCH-42", 1000, 10)
	owner, _ := sys.Customer()
	other, _ := sys.Customer()
	id := sys.PlaceOrder(owner, "WATCH-42", 1, "tok_ok")

	c := dial(t, sys.HubURL, other)
	for _, f := range []any{
		map[string]any{"type": "subscribe", "order_id": id, "after_seq": 0},
		map[string]any{"type": "subscribe", "order_id": uuid.NewString(), "after_seq": 0},
		map[string]any{"type": "subscribe", "scope": "all"},
		map[string]any{"type": "subscribe", "order_id": "not-a-uuid"},
		map[string]any{"type": "dance"},
		map[string]any{"type": "subscribe"},
	} {
		c.send(f)
		m, err := c.next(5 * time.Second)
		if err != nil || m.Type != "error" || m.Code == "" {
			t.Errorf("%v: %+v, %v", f, m, err)
		}
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.next(5 * time.Second); err != nil || m.Type != "error" || m.Code != "invalid_json" {
		t.Errorf("bad JSON: %+v, %v", m, err)
	}
	// The connection is still open, and "mine" works for the customer's own orders.
	c.send(map[string]any{"type": "subscribe", "scope": "mine"})
	testkit.WaitFor(t, "the subscription", 30*time.Second, func() bool { return sys.Hub.Stats().CustomerSubs == 1 })
	mine := sys.PlaceOrder(other, "WATCH-42", 1, "tok_ok")
	got := c.eventsUntilTerminal(30 * time.Second)
	for _, m := range got {
		if m.OrderID != mine.String() {
			t.Errorf("scope mine delivered another customer's order: %+v", m)
		}
	}

	admin := dial(t, sys.HubURL, sys.AdminToken)
	admin.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": 0})
	if got := admin.eventsUntilTerminal(30 * time.Second); len(got) != 4 {
		t.Errorf("admin subscription to a customer's order: %s", statuses(got))
	}

	for _, tok := range []string{"", "garbage", strings.Repeat("a", 10)} {
		_, resp, err := websocket.DefaultDialer.Dial(sys.HubURL+"?token="+tok, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}

// writeEvents records n orders with PENDING, RESERVED, AUTHORIZED and
// CONFIRMED straight into the outbox, as the gateway and the workflow
// would, without running workflows: this test is about fan-out.
func writeEvents(t testing.TB, store *orders.Store, customer uuid.UUID, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		o := orders.NewOrder{ID: uuid.New(), CustomerID: customer, PaymentMethod: "tok_ok", Currency: "USD",
			Lines: []order.Line{{SKU: "SKU-1", Name: "x", Quantity: 1, UnitPriceCents: 100}}}
		if err := store.CreatePending(ctx, o); err != nil {
			t.Fatal(err)
		}
		for seq, st := range []order.Status{order.Reserved, order.Authorized, order.Confirmed} {
			if err := store.RecordStatus(ctx, order.StatusRecord{OrderID: o.ID.String(), CustomerID: customer.String(), Seq: seq + 2, Status: st, TotalCents: 100, OccurredAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestThousandClientsEachGetEveryEvent: 1,000 admins subscribed to "all"
// each receive every event of 200 orders, once, in seq order per order.
func TestThousandClientsEachGetEveryEvent(t *testing.T) {
	const clients, orders, perOrder = 1000, 200, 4
	sys := system.Start(t, system.Options{SendBuffer: 1024})
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = dial(t, sys.HubURL, sys.AdminToken)
		conns[i].send(map[string]any{"type": "subscribe", "scope": "all"})
	}
	testkit.WaitFor(t, "1000 subscriptions", 30*time.Second, func() bool { return sys.Hub.Stats().AllSubs == clients })

	var wg sync.WaitGroup
	var complete atomic.Int64
	errs := make(chan error, clients)
	for _, c := range conns {
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			last := map[string]int{}
			ids := map[string]bool{}
			for len(ids) < orders*perOrder {
				m, err := c.next(60 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("after %d events: %w", len(ids), err)
					return
				}
				if ids[m.EventID] {
					errs <- fmt.Errorf("event %s twice", m.EventID)
					return
				}
				if m.Seq != last[m.OrderID]+1 {
					errs <- fmt.Errorf("order %s: seq %d after %d", m.OrderID, m.Seq, last[m.OrderID])
					return
				}
				ids[m.EventID], last[m.OrderID] = true, m.Seq
			}
			if _, err := c.next(300 * time.Millisecond); err == nil {
				errs <- errors.New("an extra message")
				return
			}
			complete.Add(1)
		}(c)
	}
	writeEvents(t, sys.Store, uuid.New(), orders)
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if complete.Load() != clients {
		t.Errorf("%d of %d clients got all %d events exactly once", complete.Load(), clients, orders*perOrder)
	}
}

// TestSlowClientIsDisconnected: a client that stops reading is closed with
// code 4001 instead of holding the hub back, and others are unaffected.
func TestSlowClientIsDisconnected(t *testing.T) {
	sys := system.Start(t, system.Options{SendBuffer: 8})
	slow := dial(t, sys.HubURL, sys.AdminToken)
	slow.send(map[string]any{"type": "subscribe", "scope": "all"})
	testkit.WaitFor(t, "the subscription", 30*time.Second, func() bool { return sys.Hub.Stats().AllSubs == 1 })
	pad := strings.Repeat("x", 2000)
	for i := 0; i < 20000 && sys.Hub.Stats().Connections > 0; i++ {
		e := order.OrderEvent{EventID: fmt.Sprintf("o:%d", i+1), Type: order.EventType, OrderID: uuid.New(), Seq: 1, Status: "PENDING", Reason: order.Reason(pad)}
		data, _ := json.Marshal(e)
		sys.Hub.Dispatch(e, data)
	}
	testkit.WaitFor(t, "the slow client to be dropped", 30*time.Second, func() bool { return sys.Hub.Stats().Connections == 0 })
	var closeErr *websocket.CloseError
	for {
		_, err := slow.next(10 * time.Second)
		if err != nil {
			if !errors.As(err, &closeErr) || closeErr.Code != 4001 {
				t.Errorf("the slow client saw %v, want close code 4001", err)
			}
			break
		}
	}
}
