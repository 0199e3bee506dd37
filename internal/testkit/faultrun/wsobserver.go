package faultrun

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// WSObserver is an admin's websocket client that follows scope "all", as
// the admin dashboard does, and that resumes after every close (API.md:
// reconnect, then resubscribe each order with after_seq). It records every
// frame and every subscription it sends, for the check.
type WSObserver struct {
	url string
	log *zap.Logger

	mu      sync.Mutex
	entries []WSEntry
	orders  map[string]*wsOrder
	conn    *websocket.Conn
	connID  int
	// allAt is when the current connection subscribed to scope all.
	allAt time.Time

	writeMu sync.Mutex
}

type wsOrder struct {
	seen map[int]bool
	// contig is the highest seq with every seq up to it seen: the after_seq
	// to resume from.
	contig int
	done   bool
}

// NewWSObserver returns a client of the hub at hubURL (ws://host:port/ws)
// that signs in with an admin token.
func NewWSObserver(hubURL, adminToken string, log *zap.Logger) *WSObserver {
	return &WSObserver{url: hubURL + "?token=" + url.QueryEscape(adminToken), log: log, orders: map[string]*wsOrder{}}
}

// Run keeps a connection open until ctx ends, reconnecting after any close.
func (o *WSObserver) Run(ctx context.Context) {
	delay := 250 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		o.session(ctx)
		if time.Since(started) > 10*time.Second {
			delay = 250 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 3*time.Second)
	}
}

// session is one connection: dial, resume, read until it closes.
func (o *WSObserver) session(ctx context.Context) {
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := dialer.DialContext(ctx, o.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		o.log.Debug("websocket dial failed", zap.Error(err))
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := o.resume(conn); err != nil {
		o.log.Info("websocket resume failed", zap.Error(err))
		return
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			o.mu.Lock()
			o.conn = nil
			o.mu.Unlock()
			if ctx.Err() == nil {
				o.log.Info("websocket closed; reconnecting", zap.Error(err))
			}
			return
		}
		var f struct {
			Type string `json:"type"`
			Code string `json:"code"`
			Event
		}
		if err := json.Unmarshal(msg, &f); err != nil {
			o.log.Warn("websocket frame is not JSON", zap.ByteString("frame", msg))
			continue
		}
		switch f.Type {
		case "order.status_changed":
			o.record(f.Event)
		case "error":
			o.log.Info("websocket error frame", zap.String("code", f.Code), zap.ByteString("frame", msg))
			if f.Code == "unavailable" {
				// The hub could not replay a subscription and does not say
				// which: start over, resuming every order.
				conn.Close()
			}
		}
	}
}

// resume subscribes, on a new connection, each unfinished order from its
// last contiguous seq, and then scope all. The lock keeps Track out until
// scope all is on, so that no order falls between the two.
func (o *WSObserver) resume(conn *websocket.Conn) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connID++
	ids := make([]string, 0, len(o.orders))
	for id, st := range o.orders {
		if !st.done {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := o.subscribeLocked(conn, id); err != nil {
			return err
		}
	}
	if err := o.write(conn, map[string]string{"type": "subscribe", "scope": "all"}); err != nil {
		return err
	}
	o.conn, o.allAt = conn, time.Now()
	return nil
}

// Track tells the observer of an order the load placed. An order whose
// first attempt began before the current connection followed scope all
// may have events the connection never saw: it is subscribed from its
// last seen seq.
func (o *WSObserver) Track(orderID string, firstAttempt time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.order(orderID)
	if st.done || o.conn == nil {
		return // the next connection resumes it
	}
	if firstAttempt.Before(o.allAt.Add(time.Second)) {
		if err := o.subscribeLocked(o.conn, orderID); err != nil {
			o.log.Info("websocket subscribe failed", zap.String("order_id", orderID), zap.Error(err))
		}
	}
}

func (o *WSObserver) subscribeLocked(conn *websocket.Conn, orderID string) error {
	after := o.order(orderID).contig
	o.entries = append(o.entries, WSEntry{Conn: o.connID, Sent: true, OrderID: orderID, AfterSeq: after})
	return o.write(conn, map[string]any{"type": "subscribe", "order_id": orderID, "after_seq": after})
}

func (o *WSObserver) write(conn *websocket.Conn, v any) error {
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return conn.WriteJSON(v)
}

func (o *WSObserver) record(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entries = append(o.entries, WSEntry{Conn: o.connID, Event: e})
	st := o.order(e.OrderID)
	st.seen[e.Seq] = true
	for st.seen[st.contig+1] {
		st.contig++
	}
	if terminal(e.Status) && st.contig >= e.Seq {
		st.done = true
	}
}

func (o *WSObserver) order(id string) *wsOrder {
	st := o.orders[id]
	if st == nil {
		st = &wsOrder{seen: map[int]bool{}}
		o.orders[id] = st
	}
	return st
}

// Has reports whether the event (orderID, seq) arrived.
func (o *WSObserver) Has(orderID string, seq int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.orders[orderID]
	return st != nil && st.seen[seq]
}

// Entries returns the log of frames and subscriptions.
func (o *WSObserver) Entries() []WSEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]WSEntry(nil), o.entries...)
}

// Connections says how many connections the client opened.
func (o *WSObserver) Connections() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.connID
}
