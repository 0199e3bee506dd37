package ws

import (
	"context"
	"encoding/json"
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

// conn is one client. Its writer goroutine is the only one that writes to
// the socket; everything else queues to send.
type conn struct {
	hub    *Hub
	ws     *websocket.Conn
	claims authn.Claims
	log    *zap.Logger
	send   chan []byte
	// expires is the token's exp: the connection ends then, since the
	// token was its only authorization.
	expires time.Time

	closeOnce sync.Once
	closing   chan struct{}
	closeCode int
	closeText string

	mu sync.Mutex
	// last is the highest seq sent per order: it makes delivery once per
	// event and in seq order, whatever Kafka or a replay repeats.
	last map[uuid.UUID]int
	// replaying holds live events of an order whose replay is running.
	replaying map[uuid.UUID][]pending
	// orders, all and mine are this connection's subscriptions, as the
	// hub's maps hold them. deliver checks them under mu, because Dispatch
	// may hand over an event it routed just before a subscription ended.
	orders map[uuid.UUID]bool
	all    bool
	mine   bool
	// finished remembers the final seq of recently finished orders that
	// this connection follows only through a scope, so that last holds
	// open orders only and a long-lived "all" connection stays small.
	finished finishedRing
}

// finishedRing is a bounded memory of finished orders' final seqs: enough to
// drop the late duplicates an at-least-once relay may send after the end.
type finishedRing struct {
	seq  map[uuid.UUID]int
	ring []uuid.UUID
	next int
}

const finishedMemory = 4096

func (f *finishedRing) add(id uuid.UUID, seq int) {
	if f.seq == nil {
		f.seq = make(map[uuid.UUID]int, finishedMemory)
		f.ring = make([]uuid.UUID, finishedMemory)
	}
	if old := f.ring[f.next]; old != uuid.Nil {
		delete(f.seq, old)
	}
	f.ring[f.next] = id
	f.seq[id] = seq
	f.next = (f.next + 1) % finishedMemory
}

type pending struct {
	e    order.OrderEvent
	data []byte
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
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &h.writeBuffers, CheckOrigin: h.checkOrigin}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	c := &conn{
		hub: h, ws: ws, claims: claims, expires: expires, send: make(chan []byte, h.settings.SendBuffer), closing: make(chan struct{}),
		log:  h.log.With(zap.String("user_id", claims.UserID.String())),
		last: map[uuid.UUID]int{}, replaying: map[uuid.UUID][]pending{}, orders: map[uuid.UUID]bool{},
	}
	if !h.register(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(writeWait))
		ws.Close()
		return
	}
	go c.writer()
	c.reader()
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

func (c *conn) reader() {
	defer func() {
		c.close(websocket.CloseNormalClosure, "")
		c.hub.unregister(c)
	}()
	c.ws.SetReadLimit(maxFrame)
	pongWait := 2*c.hub.settings.PingInterval + writeWait
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		kind, msg, err := c.ws.ReadMessage()
		if err != nil {
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
			c.log.Warn("owner check failed", zap.String("order_id", id.String()), zap.Error(err))
			c.mu.Lock()
			c.orderErrorLocked(apperr.Unavailable, id, "could not check the order: subscribe again with after_seq set to the last seq you received for this order")
			c.mu.Unlock()
			return
		}
	}
	c.mu.Lock()
	// What the scopes had delivered of this order, restored if the replay
	// fails so that they go on as if this subscription never happened.
	prevLast, hadLast := c.last[id]
	prevFinished, hadFinished := c.finished.seq[id]
	c.orders[id] = true
	if afterSeq != nil {
		c.replaying[id] = []pending{}
		c.last[id] = *afterSeq
		// The client asks for these events again: what a scope delivered
		// before must not hide them.
		delete(c.finished.seq, id)
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
		c.log.Warn("replay failed; the subscription is dropped and the client told to subscribe again",
			zap.String("order_id", id.String()), zap.Int("after_seq", *afterSeq), zap.Error(err))
		delete(c.orders, id)
		delete(c.last, id)
		if hadLast {
			c.last[id] = prevLast
		}
		if hadFinished {
			c.finished.seq[id] = prevFinished
		}
		// The error frame goes first: after it, only what a scope of this
		// connection covers arrives, as it would have without this
		// subscription.
		c.orderErrorLocked(apperr.Unavailable, id,
			"could not replay the order's events, and the subscription is dropped: subscribe again with after_seq set to the last seq you received for this order")
		for _, p := range held {
			if c.wantsLocked(p.e) {
				c.emitLocked(p.e, p.data)
			}
		}
		return
	}
	for _, e := range events {
		data, _ := json.Marshal(e)
		c.emitLocked(e, data)
	}
	for _, p := range held {
		c.emitLocked(p.e, p.data)
	}
}

func (c *conn) deliver(e order.OrderEvent, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, ok := c.replaying[e.OrderID]; ok {
		c.replaying[e.OrderID] = append(held, pending{e, data})
		return
	}
	if !c.wantsLocked(e) {
		return // routed just before its subscription ended
	}
	c.emitLocked(e, data)
}

// wantsLocked says whether a subscription of this connection covers e.
func (c *conn) wantsLocked(e order.OrderEvent) bool {
	return c.all || c.orders[e.OrderID] || (c.mine && e.CustomerID == c.claims.UserID)
}

// emitLocked queues an event unless this connection already had it.
func (c *conn) emitLocked(e order.OrderEvent, data []byte) {
	if e.Seq <= c.last[e.OrderID] || e.Seq <= c.finished.seq[e.OrderID] {
		return
	}
	c.last[e.OrderID] = e.Seq
	if e.Status.Terminal() && !c.orders[e.OrderID] {
		delete(c.last, e.OrderID)
		c.finished.add(e.OrderID, e.Seq)
	}
	c.queueLocked(data)
	c.hub.m.delivered.Inc()
}

// tracked is how many orders the connection remembers, for tests.
func (c *conn) tracked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.last) + len(c.finished.seq)
}

func (c *conn) queueLocked(data []byte) {
	select {
	case <-c.closing:
		return // the writer sends nothing more but the close frame
	default:
	}
	select {
	case c.send <- data:
	default:
		c.hub.m.dropped.Inc()
		c.log.Info("client too slow; disconnecting")
		c.close(closeTooSlow, "too slow: reconnect and resubscribe with after_seq")
	}
}

func (c *conn) error(code, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errorLocked(code, msg)
}

func (c *conn) errorLocked(code, msg string) {
	data, _ := json.Marshal(map[string]string{"type": "error", "code": code, "message": msg})
	c.queueLocked(data)
}

// orderErrorLocked is an error frame about one order's subscription; it
// names the order so that a client following several knows which one to
// subscribe to again.
func (c *conn) orderErrorLocked(code string, id uuid.UUID, msg string) {
	data, _ := json.Marshal(map[string]string{"type": "error", "code": code, "message": msg, "order_id": id.String()})
	c.queueLocked(data)
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
			c.log.Info("token expired; closing the connection", zap.Time("expired_at", c.expires))
			c.close(closeTokenExpired, "token expired: reconnect with a fresh token and resume with after_seq")
		case msg := <-c.send:
			if !c.expires.IsZero() && !time.Now().Before(c.expires) {
				// The timer and a queued event were ready together and
				// select chose the event: the token has ended all the same.
				c.close(closeTokenExpired, "token expired: reconnect with a fresh token and resume with after_seq")
				c.writeClose()
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
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
