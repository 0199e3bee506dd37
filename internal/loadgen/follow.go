package loadgen

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// terminal is how an order ended, as its terminal event told.
type terminal struct {
	Status order.Status
	Reason order.Reason
	At     time.Time
}

// follower keeps one customer's websocket connection, subscribed to the
// customer's own orders, and hands each order's terminal event to whoever
// waits for it. It reconnects when the connection drops, and resumes the
// orders it still waits for with after_seq, as API.md asks of a client.
type follower struct {
	wsURL string
	token string
	// onDrop counts a lost connection (an error of kind websocket).
	onDrop func()

	mu sync.Mutex
	// waiting holds, per order still followed, the channel its terminal
	// event goes to and the last seq seen.
	waiting map[uuid.UUID]*watch
	// early holds terminal events of orders nobody waits for yet: the hub
	// may deliver an order's end before its POST has answered.
	early map[uuid.UUID]terminal
	conn  *websocket.Conn
}

type watch struct {
	done    chan terminal
	lastSeq int
}

func newFollower(wsURL, token string, onDrop func()) *follower {
	return &follower{wsURL: wsURL, token: token, onDrop: onDrop, waiting: map[uuid.UUID]*watch{}, early: map[uuid.UUID]terminal{}}
}

// connect dials the hub and subscribes to the customer's orders. It
// returns once the hub has taken the subscription, so that no order placed
// after it is missed.
func (f *follower) connect(ctx context.Context) (*websocket.Conn, error) {
	c, err := dialHub(ctx, websocket.DefaultDialer, f.wsURL, f.token)
	if err != nil {
		return nil, err
	}
	frames := []any{map[string]string{"type": "subscribe", "scope": "mine"}}
	f.mu.Lock()
	for id, w := range f.waiting {
		frames = append(frames, map[string]any{"type": "subscribe", "order_id": id.String(), "after_seq": w.lastSeq})
	}
	f.mu.Unlock()
	if _, err := subscribe(c, frames, f.deliver); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialHub opens a websocket to the hub at wsURL with token.
func dialHub(ctx context.Context, d *websocket.Dialer, wsURL, token string) (*websocket.Conn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, fmt.Errorf("websocket url %q: %w", wsURL, err)
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := d.DialContext(dctx, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("connect to the websocket hub: %w", err)
	}
	return c, nil
}

// subscribe sends frames and returns once the hub has handled them: the
// hub acknowledges nothing, but it answers a client's frames in order, so
// its error answer to a deliberately unknown frame sent after them proves
// they were handled. Events that arrive meanwhile go to onEvent. It
// returns the first error frame: the barrier's answer (code
// invalid_argument), unless the hub refused one of the frames before it.
func subscribe(c *websocket.Conn, frames []any, onEvent func(message)) (message, error) {
	frames = append(frames, map[string]string{"type": "barrier"})
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for _, fr := range frames {
		if err := c.WriteJSON(fr); err != nil {
			return message{}, fmt.Errorf("subscribe on the websocket hub: %w", err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m message
		if err := c.ReadJSON(&m); err != nil {
			return message{}, fmt.Errorf("subscribe on the websocket hub: %w", err)
		}
		if m.Type == "error" {
			_ = c.SetReadDeadline(time.Time{})
			return m, nil
		}
		onEvent(m)
	}
}

// message is a frame from the hub: an order event, or an error.
type message struct {
	order.OrderEvent
	Code    string `json:"code"`
	Message string `json:"message"`
}

// run reads events until ctx ends, reconnecting when the connection drops.
func (f *follower) run(ctx context.Context, c *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { f.closeConn() })
	defer stop()
	for {
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
		for {
			var m message
			if err := c.ReadJSON(&m); err != nil {
				break
			}
			f.deliver(m)
		}
		c.Close()
		if ctx.Err() != nil {
			return
		}
		f.onDrop()
		for {
			var err error
			if c, err = f.connect(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (f *follower) closeConn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		_ = f.conn.Close()
	}
}

func (f *follower) deliver(m message) {
	if m.Type != order.EventType {
		return
	}
	at := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.waiting[m.OrderID]
	if ok && m.Seq > w.lastSeq {
		w.lastSeq = m.Seq
	}
	if !m.Status.Terminal() {
		return
	}
	t := terminal{Status: m.Status, Reason: m.Reason, At: at}
	if !ok {
		f.early[m.OrderID] = t
		return
	}
	delete(f.waiting, m.OrderID)
	w.done <- t // buffered, and sent once: the watch is gone now
}

// wait follows the order id and returns the channel its terminal event
// comes on. Call forget if the caller stops waiting.
func (f *follower) wait(id uuid.UUID) <-chan terminal {
	done := make(chan terminal, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.early[id]; ok {
		delete(f.early, id)
		done <- t
		return done
	}
	f.waiting[id] = &watch{done: done}
	return done
}

func (f *follower) forget(id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.waiting, id)
}
