package gateway_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// TestShopperDashboardResumesAfterTheHubDrops: the connection to the hub
// breaks (no close frame: what a crashed hub or a dropped network looks
// like) while an order waits for its authorization, and stays broken
// until the order is confirmed. The page reconnects by itself and resumes
// the order after the last seq it showed: its timeline ends up with every
// event, each once.
func TestShopperDashboardResumesAfterTheHubDrops(t *testing.T) {
	proxy := newHubProxy(t)
	sys := system.Start(t, system.Options{SlowDelay: 6 * time.Second, Env: map[string]string{"WS_PUBLIC_URL": "ws://" + proxy.addr() + "/ws"}})
	proxy.to(strings.TrimSuffix(strings.TrimPrefix(sys.HubURL, "ws://"), "/ws"))
	sys.Product("KITE-3", 3900, 5)
	const email, password = "kim@example.com", "password123"
	if status, body := sys.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": "Kim"}); status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}
	token := sys.Login(email, password)

	ctx := browser(t, 120*time.Second)
	steps := `[...document.querySelectorAll("#orders > li .timeline .step")].map(s => s.textContent).join(" ")`
	var id uuid.UUID
	var before, after, live string
	var cutAt time.Time
	err := chromedp.Run(ctx,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/#orders"),
		chromedp.WaitVisible(`#auth`, chromedp.ByQuery),
		chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		poll(`document.querySelector("#live").textContent === "live"`, 10*time.Second),
		chromedp.ActionFunc(func(ctx context.Context) error {
			id = sys.PlaceOrder(token, "KITE-3", 1, "tok_slow")
			return nil
		}),
		poll(steps+` === "PENDING RESERVED"`, 15*time.Second),
		chromedp.Evaluate(steps, &before),
		chromedp.ActionFunc(func(context.Context) error {
			proxy.cut()
			cutAt = time.Now()
			return nil
		}),
		poll(`document.querySelector("#live").textContent === "reconnecting"`, 10*time.Second),
		// The order goes on while the page cannot hear of it.
		chromedp.ActionFunc(func(context.Context) error {
			sys.WaitStatus(token, id, 30*time.Second, "CONFIRMED")
			proxy.restore()
			return nil
		}),
		poll(`document.querySelector("#live").textContent === "live" && `+steps+` === "PENDING RESERVED AUTHORIZED CONFIRMED"`, 30*time.Second),
		chromedp.Evaluate(steps, &after),
		textOf(`#live`, &live),
		cspViolations(t, "the shopper's dashboard"),
	)
	if err != nil {
		var shown string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#live").textContent + ": " + `+steps, &shown))
		t.Fatalf("browser (order %s, cut %v ago): %v; the page shows %q", id, time.Since(cutAt).Round(time.Second), err, shown)
	}
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing the browser: %v", err)
	}
	if before != "PENDING RESERVED" || after != "PENDING RESERVED AUTHORIZED CONFIRMED" || live != "live" {
		t.Errorf("timeline before the cut %q, after %q; live %q", before, after, live)
	}
	if n := proxy.connections(); n < 2 {
		t.Errorf("the page connected to the hub %d times, want a reconnect", n)
	}
}

// hubProxy stands between the browser and the hub, so that a test can
// break the connection without a close frame and keep it broken.
type hubProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	down    bool
	open    map[net.Conn]bool
	served  int
}

func newHubProxy(t *testing.T) *hubProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hubProxy{ln: ln, open: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *hubProxy) addr() string { return p.ln.Addr().String() }

func (p *hubProxy) to(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = backend
}

func (p *hubProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down || p.backend == "" {
			p.mu.Unlock()
			c.Close()
			continue
		}
		backend := p.backend
		p.open[c] = true
		p.served++
		p.mu.Unlock()
		go p.pipe(c, backend)
	}
}

func (p *hubProxy) pipe(c net.Conn, backend string) {
	b, err := net.Dial("tcp", backend)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	p.open[b] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(b, c); p.drop(b) }()
	_, _ = io.Copy(c, b)
	p.drop(c)
}

func (p *hubProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones until restore.
func (p *hubProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.open {
		c.Close()
		delete(p.open, c)
	}
}

func (p *hubProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// connections is how many connections the proxy has passed on.
func (p *hubProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}
