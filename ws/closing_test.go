package ws_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// TestNothingFollowsTheCloseFrame: a client that sends a frame over the
// limit is closed with 1009 while events flow to it, and no data frame
// reaches it after the close frame (the writer and gorilla both write on
// the socket; the close must go through the writer).
func TestNothingFollowsTheCloseFrame(t *testing.T) {
	bad, runs := 0, 0
	for range 20 {
		hub, url, tok := bareHub(t, ws.Settings{SendBuffer: 1 << 20})
		c, _, err := websocket.DefaultDialer.Dial(url+"?token="+tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.WriteJSON(map[string]any{"type": "subscribe", "scope": "all"})
		time.Sleep(20 * time.Millisecond)
		raw := c.UnderlyingConn()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				dispatch(hub, uuid.New(), 1)
			}
		}()
		time.Sleep(2 * time.Millisecond)
		_ = c.WriteMessage(websocket.TextMessage, make([]byte, 5000))
		br := bufio.NewReader(raw)
		_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
		sawClose, thisBad, closeCode := false, 0, 0
		for {
			h := make([]byte, 2)
			if _, err := io.ReadFull(br, h); err != nil {
				break
			}
			n := int(h[1] & 0x7f)
			if n == 126 {
				b := make([]byte, 2)
				_, _ = io.ReadFull(br, b)
				n = int(binary.BigEndian.Uint16(b))
			} else if n == 127 {
				b := make([]byte, 8)
				_, _ = io.ReadFull(br, b)
				n = int(binary.BigEndian.Uint64(b))
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				break
			}
			if h[0]&0x0f == 8 {
				sawClose = true
				if len(p) >= 2 {
					closeCode = int(binary.BigEndian.Uint16(p))
				}
			} else if sawClose {
				thisBad++
			}
		}
		close(stop)
		<-done
		c.Close()
		runs++
		if thisBad > 0 {
			bad++
		}
		if closeCode != websocket.CloseMessageTooBig {
			t.Errorf("closed with %d, want 1009", closeCode)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d connections got data frames after the close frame", bad, runs)
	}
}

// TestLateDuplicatesStayDroppedAfterManyOrdersEnd: the hub remembers
// finished orders for every connection at once, so a late duplicate of a
// shopper's order is still dropped after thousands of other orders ended.
func TestLateDuplicatesStayDroppedAfterManyOrdersEnd(t *testing.T) {
	tokens := authn.New(strings.Repeat("h", 32), time.Hour, time.Now)
	hub := ws.New(ws.Deps{Tokens: tokens, Registry: prometheus.NewRegistry(), Log: testkit.Logger()}, ws.Settings{SendBuffer: 1 << 16})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	me := uuid.New()
	tok, _, _ := tokens.Issue(authn.Claims{UserID: me, Role: "customer"})
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteJSON(map[string]any{"type": "subscribe", "scope": "mine"})
	time.Sleep(50 * time.Millisecond)
	send := func(id, cust uuid.UUID, seq int, st order.Status) {
		e := order.OrderEvent{OrderID: id, CustomerID: cust, Seq: seq, Status: st, OccurredAt: time.Now()}.Complete()
		data, _ := json.Marshal(e)
		hub.Dispatch(e, data)
	}
	x := uuid.New()
	send(x, me, 1, order.Pending)
	send(x, me, 2, order.Confirmed)
	for i := 0; i < 5000; i++ {
		send(uuid.New(), uuid.New(), 1, order.Confirmed)
	}
	send(x, me, 1, order.Pending)   // late duplicate
	send(x, me, 2, order.Confirmed) // late duplicate
	n := 0
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("the shopper received %d frames for 2 distinct events", n)
	}
}
