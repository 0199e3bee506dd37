package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestScopeConnectionMemoryIsBounded: a connection following "all" over
// 20,000 orders remembers none of them, the hub remembers the open ones
// and a bounded window of finished ones, and a late duplicate of a
// recently finished order is still dropped.
func TestScopeConnectionMemoryIsBounded(t *testing.T) {
	h := New(Deps{Log: testkit.Logger()}, Settings{SendBuffer: 1 << 20})
	c := &conn{hub: h, closing: make(chan struct{}), all: true,
		last: map[uuid.UUID]int{}, replaying: map[uuid.UUID][]pending{}, orders: map[uuid.UUID]bool{}}
	h.all[c] = struct{}{}
	event := func(id uuid.UUID, seq int, status order.Status) {
		e := order.OrderEvent{OrderID: id, Seq: seq, Status: status}.Complete()
		data, _ := json.Marshal(e)
		h.Dispatch(e, data)
	}
	var lastID uuid.UUID
	for i := 0; i < 20000; i++ {
		id := uuid.New()
		event(id, 1, "PENDING")
		event(id, 2, "CONFIRMED")
		lastID = id
	}
	open := uuid.New()
	event(open, 1, "PENDING")
	if n := c.tracked(); n != 0 {
		t.Errorf("the connection remembers %d orders; want none", n)
	}
	if n := h.sequence.tracked(); n > finishedMemory+1 {
		t.Errorf("the hub remembers %d orders; want at most %d", n, finishedMemory+1)
	}
	before := len(c.queue)
	event(lastID, 2, "CONFIRMED") // a late duplicate from a relay that took over
	event(open, 1, "PENDING")
	if len(c.queue) != before {
		t.Errorf("a duplicate was delivered")
	}
	if len(c.queue) != 40001 {
		t.Errorf("%d events delivered, want 40001", len(c.queue))
	}
}

type fakeEvents struct{ events []order.OrderEvent }

func (f fakeEvents) Events(_ context.Context, _ uuid.UUID, after int) ([]order.OrderEvent, error) {
	var out []order.OrderEvent
	for _, e := range f.events {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, nil
}
func (f fakeEvents) Owner(context.Context, uuid.UUID) (uuid.UUID, error) { return uuid.Nil, nil }
func (f fakeEvents) Ping(context.Context) error                          { return nil }

// TestExplicitReplayOfAFinishedOrder: an order first seen through a scope
// and finished is replayed in full when the client subscribes to it.
func TestExplicitReplayOfAFinishedOrder(t *testing.T) {
	id := uuid.New()
	var history []order.OrderEvent
	for seq, st := range []order.Status{"PENDING", "RESERVED", "AUTHORIZED", "CONFIRMED"} {
		history = append(history, order.OrderEvent{OrderID: id, Seq: seq + 1, Status: st}.Complete())
	}
	h := New(Deps{Events: fakeEvents{history}, Log: testkit.Logger()}, Settings{})
	c := &conn{hub: h, closing: make(chan struct{}), claims: authn.Claims{Role: "admin"}, all: true,
		last: map[uuid.UUID]int{}, replaying: map[uuid.UUID][]pending{}, orders: map[uuid.UUID]bool{}}
	h.all[c] = struct{}{}
	for _, e := range history {
		data, _ := json.Marshal(e)
		h.Dispatch(e, data)
	}
	c.queue = nil
	zero := 0
	c.subscribeOrder(id.String(), &zero)
	if len(c.queue) != 4 {
		t.Errorf("replay after a scope had the order: %d events, want 4", len(c.queue))
	}
}

// failingEvents fails every replay, after running during (a live event
// arriving while the replay runs).
type failingEvents struct{ during func() }

func (f failingEvents) Events(context.Context, uuid.UUID, int) ([]order.OrderEvent, error) {
	f.during()
	return nil, errors.New("the database went away")
}
func (f failingEvents) Owner(context.Context, uuid.UUID) (uuid.UUID, error) { return uuid.Nil, nil }
func (f failingEvents) Ping(context.Context) error                          { return nil }

// TestFailedReplayLeavesScopesWhole: a connection following "all" asks for
// an order's replay, which fails while a live event of that order arrives.
// The client gets the error frame, and the live event still, as "all"
// delivers it without the order subscription; nothing is delivered twice,
// and later events come through the scope alone.
func TestFailedReplayLeavesScopesWhole(t *testing.T) {
	id := uuid.New()
	ev := func(seq int, status order.Status) (order.OrderEvent, []byte) {
		e := order.OrderEvent{OrderID: id, Seq: seq, Status: status}.Complete()
		data, _ := json.Marshal(e)
		return e, data
	}
	var h *Hub
	h = New(Deps{Events: failingEvents{during: func() { h.Dispatch(ev(3, "AUTHORIZED")) }}, Log: testkit.Logger()}, Settings{})
	c := &conn{hub: h, closing: make(chan struct{}), claims: authn.Claims{Role: "admin"}, all: true,
		last: map[uuid.UUID]int{}, replaying: map[uuid.UUID][]pending{}, orders: map[uuid.UUID]bool{}}
	h.all[c] = struct{}{}
	h.Dispatch(ev(2, "RESERVED")) // what "all" delivered before
	c.queue = nil

	zero := 0
	c.subscribeOrder(id.String(), &zero)
	h.Dispatch(ev(3, "AUTHORIZED")) // Kafka repeats it
	h.Dispatch(ev(4, "CONFIRMED"))
	var got []string
	for _, f := range c.queue {
		var m map[string]any
		_ = json.Unmarshal(payload(f), &m)
		if m["type"] == "error" {
			got = append(got, fmt.Sprintf("error:%v:%v", m["code"], m["order_id"] == id.String()))
			continue
		}
		got = append(got, fmt.Sprintf("%v:%v", m["seq"], m["status"]))
	}
	if want := "[error:unavailable:true 3:AUTHORIZED 4:CONFIRMED]"; fmt.Sprint(got) != want {
		t.Errorf("the client received %v, want %s", got, want)
	}
	if s := h.Stats(); s.OrderSubs != 0 {
		t.Errorf("the failed subscription is still routed: %+v", s)
	}
}

// TestLeavingTouchesOnlyItsOwnOrders: a connection that goes takes its own
// order subscriptions with it, leaves every other connection's as they
// were, and a subscription that arrives after it went is not kept.
func TestLeavingTouchesOnlyItsOwnOrders(t *testing.T) {
	h := New(Deps{Log: testkit.Logger()}, Settings{})
	newConn := func() *conn {
		c := &conn{hub: h, closing: make(chan struct{})}
		if !h.register(c) {
			t.Fatal("register refused")
		}
		return c
	}
	stay, leave := newConn(), newConn()
	shared := uuid.New()
	h.mu.Lock()
	for range 1000 {
		h.followOrder(uuid.New(), stay)
	}
	h.followOrder(shared, stay)
	h.followOrder(shared, leave)
	own := uuid.New()
	h.followOrder(own, leave)
	h.mu.Unlock()

	h.unregister(leave)
	h.writers.Done() // register counted a writer that this test never ran

	h.mu.Lock()
	_, stillShared := h.byOrder[shared][stay]
	_, leftShared := h.byOrder[shared][leave]
	_, ownKept := h.byOrder[own]
	followed := len(h.ordersOf[stay])
	_, remembered := h.ordersOf[leave]
	h.followOrder(uuid.New(), leave) // a late subscribe of the gone connection
	_, revived := h.ordersOf[leave]
	h.mu.Unlock()
	if !stillShared || leftShared || ownKept || followed != 1001 || remembered || revived {
		t.Errorf("after one connection left: other kept %v, leaver kept %v, its own order kept %v, other follows %d (want 1001), leaver remembered %v, revived %v",
			stillShared, leftShared, ownKept, followed, remembered, revived)
	}
	if st := h.Stats(); st.OrderSubs != 1001 || st.Connections != 1 {
		t.Errorf("stats %+v, want 1001 order subscriptions on 1 connection", st)
	}
}

// payload is what a client reads of f: its bytes after the frame header.
func payload(f *outFrame) []byte {
	switch f.b[1] {
	case 126:
		return f.b[4:]
	case 127:
		return f.b[10:]
	}
	return f.b[2:]
}
