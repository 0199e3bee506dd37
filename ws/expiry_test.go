package ws_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// shortToken is a token of the test system that expires within ttl (exp
// has whole seconds), and its exp.
func shortToken(t *testing.T, id uuid.UUID, role order.Role, ttl time.Duration) (string, time.Time) {
	t.Helper()
	tok, exp, err := authn.New(system.Secret, ttl, time.Now).Issue(authn.Claims{UserID: id, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok, exp
}

// closedWith reads until the connection ends and returns the messages
// before the close and the close frame's code (0 if there was none).
func (c *client) closedWith(within time.Duration) ([]message, int, time.Time) {
	c.t.Helper()
	var got []message
	deadline := time.Now().Add(within)
	for {
		m, err := c.next(time.Until(deadline))
		if err == nil {
			got = append(got, m)
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return got, ce.Code, time.Now()
		}
		c.t.Fatalf("after %s: no close frame: %v", statuses(got), err)
	}
}

// TestConnectionEndsWithItsToken: a customer's token expires about 2 s
// after they connect, while their order is between RESERVED and
// AUTHORIZED. The hub closes the connection with 4401 at the expiry,
// having sent nothing of the order's later events; reconnecting with a
// fresh token and after_seq delivers the events missed meanwhile, once.
func TestConnectionEndsWithItsToken(t *testing.T) {
	sys := system.Start(t, system.Options{SlowDelay: 6 * time.Second})
	sys.Product("WATCH-42", 1000, 10)
	fresh, customer := sys.Customer()
	id := sys.PlaceOrder(fresh, "WATCH-42", 1, "tok_slow")
	// Authorization takes 6 s from here; the token ends within 3.
	sys.WaitStatus(fresh, id, 30*time.Second, "RESERVED")

	short, exp := shortToken(t, customer, "customer", 3*time.Second)
	c := dial(t, sys.HubURL, short)
	c.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": 0})
	got, code, at := c.closedWith(15 * time.Second)
	if code != 4401 {
		t.Fatalf("closed with %d, want 4401", code)
	}
	if at.Before(exp.Add(-100*time.Millisecond)) || at.After(exp.Add(1500*time.Millisecond)) {
		t.Errorf("closed at %v, %v from the token's expiry", at, at.Sub(exp))
	}
	if statuses(got) != "1:PENDING 2:RESERVED" {
		t.Errorf("before the close: %s", statuses(got))
	}
	testkit.WaitFor(t, "the hub to forget the connection", 30*time.Second, func() bool { return sys.Hub.Stats().Connections == 0 })

	sys.WaitStatus(fresh, id, 30*time.Second, "CONFIRMED")
	again := dial(t, sys.HubURL, fresh)
	again.send(map[string]any{"type": "subscribe", "order_id": id, "after_seq": got[len(got)-1].Seq})
	if rest := again.eventsUntilTerminal(10 * time.Second); statuses(rest) != "3:AUTHORIZED 4:CONFIRMED" {
		t.Errorf("after reconnecting with a fresh token: %s", statuses(rest))
	}
	again.quiet(500 * time.Millisecond)

	// A token that has already expired does not connect at all.
	_, resp, err := websocket.DefaultDialer.Dial(sys.HubURL+"?token="+short, nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("an expired token connected: %v", err)
	}
}

// TestExpiredAdminStopsReceivingAll: an admin following every order with a
// token that expires is closed with 4401 and receives nothing of the
// orders that happen afterwards, while an admin with a valid token does.
func TestExpiredAdminStopsReceivingAll(t *testing.T) {
	sys := system.Start(t, system.Options{})
	short, exp := shortToken(t, uuid.New(), "admin", 2*time.Second)
	expiring := dial(t, sys.HubURL, short)
	expiring.send(map[string]any{"type": "subscribe", "scope": "all"})
	valid := dial(t, sys.HubURL, sys.AdminToken)
	valid.send(map[string]any{"type": "subscribe", "scope": "all"})
	testkit.WaitFor(t, "both subscriptions", 30*time.Second, func() bool { return sys.Hub.Stats().AllSubs == 2 })

	got, code, at := expiring.closedWith(10 * time.Second)
	if code != 4401 || len(got) != 0 {
		t.Fatalf("the expiring admin saw %s and close %d", statuses(got), code)
	}
	if at.After(exp.Add(1500 * time.Millisecond)) {
		t.Errorf("closed %v after the token's expiry", at.Sub(exp))
	}
	testkit.WaitFor(t, "the expired subscription to end", 30*time.Second, func() bool { return sys.Hub.Stats().AllSubs == 1 })

	writeEvents(t, sys.Store, uuid.New(), 3)
	for i := 0; i < 12; i++ {
		if m, err := valid.next(20 * time.Second); err != nil || m.Type != "order.status_changed" {
			t.Fatalf("the valid admin, event %d: %+v, %v", i+1, m, err)
		}
	}
	valid.quiet(300 * time.Millisecond)
}
