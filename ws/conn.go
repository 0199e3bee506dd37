package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Close codes. 4000-4999 are the application's own.
const (
	closeGoingAway = websocket.CloseGoingAway
	// closeTooSlow: the client fell behind its send buffer. It reconnects
	// and resubscribes with after_seq to get what it missed.
	closeTooSlow = 4001
	// closeTokenExpired: the token the connection was opened with has
	// expired. The client reconnects with a fresh token and resubscribes
	// with after_seq.
	closeTokenExpired = 4401

	writeWait   = 10 * time.Second
	maxFrame    = 4096
	replayLimit = 10 * time.Second
)

// conn is one client. Its writer goroutine is the only one that writes
// data to the socket; everything else queues to send.
type conn struct {
	hub    *Hub
	ws     *websocket.Conn
	claims authn.Claims
	// ready wakes the writer (one slot): the queue has frames.
	ready chan struct{}
	// expires is the token's exp: the connection ends then, since the
	// token was its only authorization.
	expires time.Time
	// deadline is the socket's write deadline as the writer last set it.
	deadline time.Time

	closeOnce sync.Once
	closing   chan struct{}
	closeCode int
	closeText string

	mu sync.Mutex
	// last is the highest seq sent per order that this connection
	// subscribed to by id: it keeps a replay and the live events that
	// arrive meanwhile once per event and in seq order. Live events come
	// once and in order already (the hub's sequencer), so an order seen
	// only through a scope needs no entry, and a long-lived "all"
	// connection stays small.
	last map[uuid.UUID]int
	// replaying holds live events of an order whose replay is running.
	replaying map[uuid.UUID][]pending
	// queue holds the frames the writer has yet to send; a client whose
	// queue reaches the hub's SendBuffer is too slow. A slice rather than
	// a channel of that size: an idle connection holds none of it, and the
	// writer takes all that is queued at once.
	queue []*outFrame
	// spare is the writer's: the queue's last slice, emptied, for the
	// queue to use again rather than allocate a slice for every event.
	spare []*outFrame
	// orders, all and mine are this connection's subscriptions, as the
	// hub's maps hold them. deliver checks them under mu, because Dispatch
	// may hand over an event it routed just before a subscription ended.
	orders map[uuid.UUID]bool
	all    bool
	mine   bool
}

type pending struct {
	e order.OrderEvent
	f *outFrame
}

// ServeHTTP upgrades an authenticated request to a websocket.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	claims, err := h.tokens.Verify(token)
	var expires time.Time
	if err == nil {
		expires, err = tokenExpiry(token)
	}
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthenticated","message":"connect with ?token=<login token> or an Authorization header"}}`))
		return
	}
	// Events go out as frames the hub encodes once (conn.write); gorilla
	// writes only control frames, and with a pool it holds no write
	// buffer.
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 256, WriteBufferPool: &h.writeBuffers, CheckOrigin: h.checkOrigin}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	c := &conn{
		hub: h, ws: ws, claims: claims, expires: expires, ready: make(chan struct{}, 1), closing: make(chan struct{}),
		last: map[uuid.UUID]int{}, replaying: map[uuid.UUID][]pending{}, orders: map[uuid.UUID]bool{},
	}
	// The client's close frame is answered by the writer, after whatever
	// it is writing: nothing may follow the answer.
	ws.SetCloseHandler(func(code int, _ string) error {
		c.close(code, "")
		return nil
	})
	// A pong sets the socket's write deadline as far as the writer's,
	// which counts on no control frame bringing it nearer (gorilla's
	// own handler gives a pong one second).
	ws.SetPingHandler(func(data string) error {
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		var ne net.Error
		switch {
		case errors.Is(err, websocket.ErrCloseSent):
			return nil
		case errors.As(err, &ne):
			// A pong cut short by its deadline leaves half a frame on the
			// socket: nothing may follow it.
			c.close(websocket.CloseAbnormalClosure, "")
			return nil
		}
		return err
	})
	if !h.register(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(writeWait))
		ws.Close()
		return
	}
	// The reader runs apart from the request's goroutine, which returns:
	// net/http keeps the request's buffers for as long as that goroutine
	// runs, some 9 KiB that a websocket never uses again.
	go c.writer()
	go c.reader()
}

// tokenExpiry reads the exp claim of a token that Verify has accepted
// (authn.Claims does not carry it). The signature and the expiry are
// already checked, so reading the claims again without checking is safe.
func tokenExpiry(token string) (time.Time, error) {
	var rc jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &rc); err != nil {
		return time.Time{}, err
	}
	if rc.ExpiresAt == nil {
		return time.Time{}, authn.ErrInvalid
	}
	return rc.ExpiresAt.Time, nil
}

func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(h.settings.AllowedOrigins) == 0 {
		// Same host name, any port: the shop page is served by the gateway,
		// which usually listens on another port of the same host.
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Hostname(), hostname(r.Host))
	}
	for _, o := range h.settings.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// frame is a message from the client.
type frame struct {
	Type     string `json:"type"`
	OrderID  string `json:"order_id"`
	Scope    string `json:"scope"`
	AfterSeq *int   `json:"after_seq"`
}

// logger is the hub's logger with the connection's user, built when a
// line is written: few connections ever log, and a logger per connection
// would hold an encoder buffer for each.
func (c *conn) logger() *zap.Logger {
	return c.hub.log.With(zap.String("user_id", c.claims.UserID.String()))
}

func (c *conn) reader() {
	defer func() {
		c.close(websocket.CloseNormalClosure, "")
		c.hub.unregister(c)
	}()
	// The reader is a goroutine of the hub's, not net/http's, whose
	// recover would have kept a panic to this one connection.
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("websocket reader panicked", zap.Any("panic", r))
			c.close(websocket.CloseInternalServerErr, "")
		}
	}()
	pongWait := 2*c.hub.settings.PingInterval + writeWait
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		// The size limit is the hub's, not gorilla's (SetReadLimit): gorilla
		// would write its 1009 close itself, and the writer, which writes
		// beside gorilla, could send events after it. This close goes
		// through the writer, after what it is writing and before the rest.
		kind, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		msg, err := io.ReadAll(io.LimitReader(r, maxFrame+1))
		if err != nil {
			return
		}
		if len(msg) > maxFrame {
			c.close(websocket.CloseMessageTooBig, "frames are at most 4096 bytes")
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if kind != websocket.TextMessage || !utf8.Valid(msg) {
			c.error(apperr.InvalidJSON, "frames are JSON text in UTF-8")
			continue
		}
		var f frame
		if err := json.Unmarshal(msg, &f); err != nil {
			c.error(apperr.InvalidJSON, "the frame is not a JSON object")
			continue
		}
		c.handle(f)
	}
}

func (c *conn) handle(f frame) {
	switch {
	case f.Type == "subscribe" && f.OrderID != "":
		c.subscribeOrder(f.OrderID, f.AfterSeq)
	case f.Type == "subscribe" && f.Scope == "mine":
		c.setScope(&c.mine, true)
		c.hub.mu.Lock()
		addTo(c.hub.byCustomer, c.claims.UserID, c)
		c.hub.mu.Unlock()
	case f.Type == "subscribe" && f.Scope == "all":
		if c.claims.Role != order.RoleAdmin {
			c.error(apperr.Forbidden, "scope all is for admins")
			return
		}
		c.setScope(&c.all, true)
		c.hub.mu.Lock()
		c.hub.all[c] = struct{}{}
		c.hub.mu.Unlock()
	case f.Type == "unsubscribe" && f.OrderID != "":
		id, err := uuid.Parse(f.OrderID)
		if err != nil {
			c.error(apperr.InvalidArgument, "order_id must be a UUID")
			return
		}
		c.hub.mu.Lock()
		c.hub.unfollowOrder(id, c)
		c.hub.mu.Unlock()
		c.mu.Lock()
		delete(c.orders, id)
		if !c.all && !c.mine {
			delete(c.last, id) // live events are deduplicated by the hub already
		}
		c.mu.Unlock()
	case f.Type == "unsubscribe" && (f.Scope == "mine" || f.Scope == "all"):
		c.hub.mu.Lock()
		if f.Scope == "mine" {
			removeFrom(c.hub.byCustomer, c.claims.UserID, c)
		} else {
			delete(c.hub.all, c)
		}
		c.hub.mu.Unlock()
		if f.Scope == "mine" {
			c.setScope(&c.mine, false)
		} else {
			c.setScope(&c.all, false)
		}
	case f.Type == "subscribe" || f.Type == "unsubscribe":
		c.error(apperr.InvalidArgument, `give an order_id, or a scope of "mine" or "all"`)
	default:
		c.error(apperr.InvalidArgument, `type must be "subscribe" or "unsubscribe"`)
	}
}

func (c *conn) setScope(flag *bool, on bool) {
	c.mu.Lock()
	*flag = on
	c.mu.Unlock()
}

// subscribeOrder subscribes to one order the client may see. With
// after_seq, the events after it are replayed from the database first;
// live events that arrive meanwhile are held and sent after the replay,
// each once.
//
// If the replay fails, the subscription is dropped whole and the client is
// told, with an error frame naming the order, to subscribe again with
// after_seq. Sending the held live events instead would leave a gap before
// them, and keeping the subscription would deliver later events after that
// gap: either way the client would miss events without knowing. Dropped,
// the client has seen a gapless prefix of the order's events and resumes
// from its last seq.
func (c *conn) subscribeOrder(raw string, afterSeq *int) {
	id, err := uuid.Parse(raw)
	if err != nil {
		c.error(apperr.InvalidArgument, "order_id must be a UUID")
		return
	}
	if afterSeq != nil && *afterSeq < 0 {
		c.error(apperr.InvalidArgument, "after_seq must be 0 or more")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), replayLimit)
	defer cancel()
	if c.claims.Role != order.RoleAdmin {
		owner, err := c.hub.events.Owner(ctx, id)
		if apperr.Is(err, apperr.NotFound) || (err == nil && owner != c.claims.UserID) {
			c.error(apperr.NotFound, "order not found") // never reveal another customer's order
			return
		}
		if err != nil {
			c.logger().Warn("owner check failed", zap.String("order_id", id.String()), zap.Error(err))
			c.mu.Lock()
			c.orderErrorLocked(apperr.Unavailable, id, "could not check the order: subscribe again with after_seq set to the last seq you received for this order")
			c.mu.Unlock()
			return
		}
	}
	c.mu.Lock()
	// What this connection had sent of the order, restored if the replay
	// fails so that it goes on as if this subscription never happened.
	prevLast, hadLast := c.last[id]
	c.orders[id] = true
	if afterSeq != nil {
		c.replaying[id] = []pending{}
		// The client asks for these events again: what was sent before
		// must not hide them.
		c.last[id] = *afterSeq
	}
	c.mu.Unlock()
	c.hub.mu.Lock()
	c.hub.followOrder(id, c)
	c.hub.mu.Unlock()
	if afterSeq == nil {
		return
	}

	events, err := c.hub.events.Events(ctx, id, *afterSeq)
	if err != nil {
		c.hub.mu.Lock()
		c.hub.unfollowOrder(id, c)
		c.hub.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.replaying[id]
	delete(c.replaying, id)
	sort.SliceStable(held, func(i, j int) bool { return held[i].e.Seq < held[j].e.Seq })
	if err != nil {
		c.logger().Warn("replay failed; the subscription is dropped and the client told to subscribe again",
			zap.String("order_id", id.String()), zap.Int("after_seq", *afterSeq), zap.Error(err))
		delete(c.orders, id)
		delete(c.last, id)
		if hadLast {
			c.last[id] = prevLast
		}
		// The error frame goes first: after it, only what a scope of this
		// connection covers arrives, as it would have without this
		// subscription.
		c.orderErrorLocked(apperr.Unavailable, id,
			"could not replay the order's events, and the subscription is dropped: subscribe again with after_seq set to the last seq you received for this order")
		for _, p := range held {
			if c.wantsLocked(p.e) {
				c.emitLocked(p.e, p.f)
			}
		}
		return
	}
	for _, e := range events {
		data, _ := json.Marshal(e)
		c.emitLocked(e, textFrame(data))
	}
	for _, p := range held {
		c.emitLocked(p.e, p.f)
	}
}

// deliver queues a live event, framed as f, if a subscription of this
// connection still covers it.
func (c *conn) deliver(e order.OrderEvent, f *outFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// (The maps are looked into only when they hold something: an "all"
	// connection has them empty, and takes every event of the hub.)
	if len(c.replaying) > 0 {
		if held, ok := c.replaying[e.OrderID]; ok {
			c.replaying[e.OrderID] = append(held, pending{e, f})
			return
		}
	}
	if !c.wantsLocked(e) {
		return // routed just before its subscription ended
	}
	c.emitLocked(e, f)
}

// wantsLocked says whether a subscription of this connection covers e.
func (c *conn) wantsLocked(e order.OrderEvent) bool {
	return c.all || c.orders[e.OrderID] || (c.mine && e.CustomerID == c.claims.UserID)
}

// emitLocked queues an event unless this connection already sent it
// (or a later one of its order) for a subscription by id.
func (c *conn) emitLocked(e order.OrderEvent, f *outFrame) {
	if len(c.last) > 0 || len(c.orders) > 0 {
		if last, ok := c.last[e.OrderID]; ok {
			if e.Seq <= last {
				return
			}
			if e.Status.Terminal() && !c.orders[e.OrderID] {
				// Unsubscribed by id: the order's end is the end of its entry.
				delete(c.last, e.OrderID)
			} else {
				c.last[e.OrderID] = e.Seq
			}
		} else if c.orders[e.OrderID] {
			c.last[e.OrderID] = e.Seq
		}
	}
	c.queueLocked(f)
	c.hub.m.delivered.Inc()
}

// tracked is how many orders the connection remembers, for tests.
func (c *conn) tracked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.last)
}

func (c *conn) queueLocked(f *outFrame) {
	select {
	case <-c.closing:
		return // the writer sends nothing more but the close frame
	default:
	}
	if len(c.queue) >= c.hub.settings.SendBuffer {
		c.hub.m.dropped.Inc()
		c.logger().Info("client too slow; disconnecting")
		c.close(closeTooSlow, "too slow: reconnect and resubscribe with after_seq")
		return
	}
	c.queue = append(c.queue, f)
	if len(c.queue) == 1 {
		select {
		case c.ready <- struct{}{}:
		default: // the writer is awake already
		}
	}
}

func (c *conn) error(code, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errorLocked(code, msg)
}

func (c *conn) errorLocked(code, msg string) {
	data, _ := json.Marshal(map[string]string{"type": "error", "code": code, "message": msg})
	c.queueLocked(textFrame(data))
}

// orderErrorLocked is an error frame about one order's subscription; it
// names the order so that a client following several knows which one to
// subscribe to again.
func (c *conn) orderErrorLocked(code string, id uuid.UUID, msg string) {
	data, _ := json.Marshal(map[string]string{"type": "error", "code": code, "message": msg, "order_id": id.String()})
	c.queueLocked(textFrame(data))
}

// close asks the writer to send a close frame and end the connection.
func (c *conn) close(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.closing)
	})
}

func (c *conn) writer() {
	ping := time.NewTicker(c.hub.settings.PingInterval)
	expiry := time.NewTimer(time.Until(c.expires))
	defer func() {
		ping.Stop()
		expiry.Stop()
		c.ws.Close()
		c.hub.writers.Done()
	}()
	for {
		// A close goes before anything still queued: once the token has
		// expired, no event may reach the client any more.
		select {
		case <-c.closing:
			c.writeClose()
			return
		default:
		}
		select {
		case <-expiry.C:
			c.logger().Info("token expired; closing the connection", zap.Time("expired_at", c.expires))
			c.close(closeTokenExpired, "token expired: reconnect with a fresh token and resume with after_seq")
		case <-c.ready:
			if !c.expires.IsZero() && !time.Now().Before(c.expires) {
				// The timer and a queued event were ready together and
				// select chose the event: the token has ended all the same.
				c.close(closeTokenExpired, "token expired: reconnect with a fresh token and resume with after_seq")
				c.writeClose()
				return
			}
			if err := c.write(); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.closing:
			c.writeClose()
			return
		}
	}
}

// write sends whatever is queued with one system call where the socket
// allows it (writev on TCP). Under load the writer finds several frames
// queued, and sending them together is what lets one hub feed thousands
// of clients: a write costs mostly the call, not the bytes. Only the
// writer writes data frames; gorilla writes the control frames (pings,
// pongs, close) each with one call on the same socket, so the two never
// interleave within a frame.
func (c *conn) write() error {
	c.mu.Lock()
	frames := c.queue
	c.queue, c.spare = c.spare, nil
	c.mu.Unlock()
	if len(frames) == 0 {
		return nil
	}
	defer func() {
		// Kept for the next turn unless a burst grew it.
		clear(frames)
		if cap(frames) <= 16 {
			c.spare = frames[:0]
		}
	}()
	// The slice that gathers the frames' bytes is lent, so that an idle
	// connection holds none.
	bufs, _ := c.hub.batches.Get().(*net.Buffers)
	if bufs == nil {
		bufs = new(net.Buffers)
	}
	b := (*bufs)[:0]
	for _, f := range frames {
		b = append(b, f.b)
	}
	var err error
	sock := c.ws.UnderlyingConn()
	// The deadline moves only once it is a second nearer than writeWait:
	// setting it costs more than a write, and every control frame sets
	// it at least as far (see the ping handler).
	if now := time.Now(); now.Add(writeWait - time.Second).After(c.deadline) {
		c.deadline = now.Add(writeWait)
		err = sock.SetWriteDeadline(c.deadline)
	}
	if err == nil {
		c.hub.m.writes.Inc()
		out := b // WriteTo consumes its receiver; b keeps the slice for the pool
		_, err = out.WriteTo(sock)
	}
	clear(b)
	*bufs = b[:0]
	c.hub.batches.Put(bufs)
	return err
}

// writeClose sends the close frame that close asked for.
func (c *conn) writeClose() {
	if c.closeCode != websocket.CloseAbnormalClosure {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(writeWait))
	}
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
