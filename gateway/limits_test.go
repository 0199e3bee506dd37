package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// peer is a browser or script at one address: its connections leave
// from ip, which may be any address of 127.0.0.0/8 (all of it reaches the
// loopback listener), so that one test can be clients at many addresses.
type peer struct {
	t    testing.TB
	base string
	http *http.Client
}

func peerAt(t testing.TB, base, ip string) *peer {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &peer{t: t, base: base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do sends a JSON request; headers are name, value pairs.
func (c *peer) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	status, header, b := testkit.Exchange(c.t, c.http, method, c.base+path, body, headers...)
	if status >= 500 {
		c.t.Errorf("%s %s answered %d: %s", method, path, status, b)
	}
	return response{Status: status, Header: header, Body: b}
}

func (c *peer) login(email, password string, headers ...string) response {
	c.t.Helper()
	return c.do("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, headers...)
}

// wantRateLimited checks a 429 in API.md's shape, with a Retry-After of
// at least a second and at most max.
func wantRateLimited(t testing.TB, what string, r response, max time.Duration) {
	t.Helper()
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != 429 || r.errCode() != "rate_limited" || err != nil || secs < 1 || time.Duration(secs)*time.Second > max {
		t.Fatalf("%s: %d %s, Retry-After %q; want 429 rate_limited, Retry-After 1..%v", what, r.Status, r.Body, r.Header.Get("Retry-After"), max)
	}
}

// gatewayWith runs a system whose gateway is configured from vars, as
// `ordersaga gateway` reads them, and returns its URL and accounts.
func gatewayWith(t *testing.T, vars map[string]string) (url string, accts *accounts.Store) {
	t.Helper()
	sys := system.Start(t, system.Options{NoWorkers: true, Env: vars})
	return sys.GatewayURL, accounts.NewStore(sys.Pool)
}

// Today's X-Forwarded-For is anybody's to write: without trusted proxies
// it must not choose the address that failures are counted by.
func TestLoginLimitIgnoresForwardedForByDefault(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	c := peerAt(t, s.url, "127.0.0.1")
	for i := 0; i < 40; i++ {
		r := c.login(fmt.Sprintf("guess%d@example.com", i), "wrong-password", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		if r.Status == 429 {
			wantRateLimited(t, "failures from one connection", r, 10*time.Second)
			if i < 10 {
				t.Errorf("limited after only %d failures", i)
			}
			return
		}
		if r.Status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	t.Fatal("40 failed sign-ins from one connection, each claiming another X-Forwarded-For, were never limited")
}

// An office: many shoppers behind one address sign in within a minute.
func TestManyShoppersSignInFromOneAddress(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	store := accounts.NewStore(s.pool)
	const shoppers = 30
	for i := 0; i < shoppers; i++ {
		// Created in the store: registration has its own limit, tested below.
		if _, err := store.Create(context.Background(), fmt.Sprintf("office%d@example.com", i), "Office", "password123", order.RoleCustomer); err != nil {
			t.Fatal(err)
		}
	}
	c := peerAt(t, s.url, "127.0.0.1")
	for i := 0; i < shoppers; i++ {
		email := fmt.Sprintf("office%d@example.com", i)
		// A third of them mistype first, as people do.
		if i%3 == 0 {
			if r := c.login(email, "pasword123"); r.Status != 401 {
				t.Fatalf("shopper %d's typo: %d %s", i+1, r.Status, r.Body)
			}
		}
		if r := c.login(email, "password123"); r.Status != 200 {
			t.Fatalf("shopper %d of %d signing in from one address: %d %s", i+1, shoppers, r.Status, r.Body)
		}
	}
}

// An attacker who knows the owner's email fails on purpose, from one
// address and then from many: the owner still signs in from their own.
func TestAttackerCannotLockTheOwnerOut(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	if _, err := accounts.NewStore(s.pool).Create(context.Background(), "owner@example.com", "Owner", "owner-password", order.RoleCustomer); err != nil {
		t.Fatal(err)
	}
	attacker := peerAt(t, s.url, "127.0.0.10")
	var last response
	for i := 0; i < 30; i++ {
		if last = attacker.login("owner@example.com", fmt.Sprintf("guess-%d", i)); last.Status != 401 {
			break
		}
	}
	wantRateLimited(t, "one attacker's repeated failures", last, time.Minute)
	owner := peerAt(t, s.url, "127.0.0.2")
	if r := owner.login("owner@example.com", "owner-password"); r.Status != 200 {
		t.Fatalf("the owner after one attacking address: %d %s", r.Status, r.Body)
	}

	// Now from ten addresses, until the account itself is locked.
	var bots []*peer
	for i := 0; i < 10; i++ {
		bot := peerAt(t, s.url, fmt.Sprintf("127.0.0.%d", 20+i))
		bots = append(bots, bot)
		for j := 0; j < 10; j++ {
			if r := bot.login("owner@example.com", fmt.Sprintf("bot-%d-%d", i, j)); r.Status != 401 {
				wantRateLimited(t, "a bot's failures", r, time.Minute)
				break
			}
		}
	}
	// The last bots found the account locked after their first failure.
	r := bots[9].login("owner@example.com", "one-more-guess")
	wantRateLimited(t, "a bot once the account is locked", r, time.Minute)
	if !strings.Contains(string(r.Body), "failed sign-ins") {
		t.Errorf("429 message: %s", r.Body)
	}
	// The owner, on a device of their own, signs in at once.
	owner = peerAt(t, s.url, "127.0.0.3")
	if r := owner.login("Owner@example.com", "owner-password"); r.Status != 200 {
		t.Fatalf("the owner while bots fail on the account: %d %s", r.Status, r.Body)
	}
}

// With TRUSTED_PROXIES naming the proxy in front of it, the gateway counts
// by the address the proxy reports; a client that is not a proxy still
// cannot choose its address.
func TestTrustedProxyForwardedFor(t *testing.T) {
	url, _ := gatewayWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"})
	proxy := peerAt(t, url, "127.0.0.1")
	var last response
	for i := 0; i < 40; i++ {
		if last = proxy.login(fmt.Sprintf("guess%d@example.com", i), "wrong-password", "X-Forwarded-For", "203.0.113.7"); last.Status != 401 {
			break
		}
	}
	wantRateLimited(t, "failures of one client behind the proxy", last, 10*time.Second)
	// Another client behind the same proxy is another address.
	if r := proxy.login("someone@example.com", "wrong-password", "X-Forwarded-For", "203.0.113.8"); r.Status != 401 {
		t.Errorf("another client behind the proxy: %d %s, want 401", r.Status, r.Body)
	}
	// A client that is not the proxy: its X-Forwarded-For is ignored.
	direct := peerAt(t, url, "127.0.0.2")
	for i := 0; i < 40; i++ {
		if last = direct.login(fmt.Sprintf("guess%d@example.com", i), "wrong-password", "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1)); last.Status != 401 {
			break
		}
	}
	wantRateLimited(t, "failures of an untrusted client claiming addresses", last, 10*time.Second)
}

func TestRegisterIsThrottledPerAddress(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	register := func(c *peer, email, password string) response {
		return c.do("POST", "/api/v1/auth/register", map[string]string{"email": email, "password": password, "name": "N"})
	}
	c := peerAt(t, s.url, "127.0.0.1")
	// Refused requests cost no hash and are not counted.
	for i := 0; i < 20; i++ {
		if r := register(c, fmt.Sprintf("bad%d@example.com", i), "short"); r.Status != 400 {
			t.Fatalf("invalid registration: %d %s", r.Status, r.Body)
		}
	}
	var last response
	n := 0
	for ; n < 30; n++ {
		if last = register(c, fmt.Sprintf("new%d@example.com", n), "password123"); last.Status != 201 {
			break
		}
	}
	wantRateLimited(t, "registrations from one address", last, 10*time.Second)
	if n < 10 || n > 12 { // 10 at once, and one more per 10 s that the loop took
		t.Errorf("%d registrations before the limit, want 10", n)
	}
	// A taken email costs a hash as well.
	if r := register(c, "new0@example.com", "password123"); r.Status != 429 {
		t.Errorf("registration over the limit with a taken email: %d %s", r.Status, r.Body)
	}
	// Another address is not limited by this one.
	if r := register(peerAt(t, s.url, "127.0.0.2"), "elsewhere@example.com", "password123"); r.Status != 201 {
		t.Errorf("registration from another address: %d %s", r.Status, r.Body)
	}
}

func TestConfigRefusesBadProxiesAndOrigins(t *testing.T) {
	for vars, want := range map[string]string{
		"TRUSTED_PROXIES=10.0.0.0/33":                     "TRUSTED_PROXIES",
		"TRUSTED_PROXIES=proxy.example.com":               "TRUSTED_PROXIES",
		"CORS_ALLOWED_ORIGINS=https://shop.example.com/":  "CORS_ALLOWED_ORIGINS",
		"CORS_ALLOWED_ORIGINS=shop.example.com":           "CORS_ALLOWED_ORIGINS",
		"CORS_ALLOWED_ORIGINS=https://Shop.example.com":   "CORS_ALLOWED_ORIGINS",
		"CORS_ALLOWED_ORIGINS=ftp://shop.example.com":     "CORS_ALLOWED_ORIGINS",
		"CORS_ALLOWED_ORIGINS=https://x.example.com/path": "CORS_ALLOWED_ORIGINS",
	} {
		name, value, _ := strings.Cut(vars, "=")
		_, err := config.LoadFrom(map[string]string{name: value})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", vars, err)
		}
	}
	cfg, err := config.LoadFrom(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.1,::1", "CORS_ALLOWED_ORIGINS": "https://shop.example.com,http://127.0.0.1:3000"})
	if err != nil || len(cfg.TrustedProxies) != 3 || len(cfg.CORSAllowedOrigins) != 2 {
		t.Errorf("good values: %+v %+v, %v", cfg.TrustedProxies, cfg.CORSAllowedOrigins, err)
	}
	if cfg, err := config.LoadFrom(nil); err != nil || len(cfg.TrustedProxies) != 0 || len(cfg.CORSAllowedOrigins) != 0 {
		t.Errorf("defaults: %+v %+v, %v", cfg.TrustedProxies, cfg.CORSAllowedOrigins, err)
	}
}
