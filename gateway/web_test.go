package gateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// chromium finds the browser the shop page test drives.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: apt-get install chromium (.ci/run installs it)")
	return ""
}

// TestShopPageInABrowser is a shopper in a real browser: the page lists the
// catalogue, the shopper signs in, adds a product, places an order, and
// sees it reach CONFIRMED live, over the websocket hub.
func TestShopPageInABrowser(t *testing.T) {
	sys := system.Start(t, system.Options{})
	sys.Product("WATCH-42", 12900, 5)
	if status, body := sys.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": "web@example.com", "password": "password123", "name": "Web Shopper"}); status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}

	ctx := browser(t, 90*time.Second)

	var who, live, badge, left string
	var catalogueHidden bool
	var violations []string
	err := chromedp.Run(ctx,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/"),
		chromedp.WaitVisible(`#p-WATCH-42`, chromedp.ByQuery),
		chromedp.SendKeys(`#email`, "web@example.com", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "password123", chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#logout`, chromedp.ByQuery),
		chromedp.Text(`#who`, &who, chromedp.ByQuery),
		chromedp.Click(`#p-WATCH-42 button`, chromedp.ByQuery),
		chromedp.Click(`#order`, chromedp.ByQuery),
		visible(`#orders .badge.CONFIRMED`, 30*time.Second),
		textOf(`#orders .badge`, &badge),
		textOf(`#live`, &live),
		chromedp.Poll(`document.querySelector("#p-WATCH-42 .left").textContent === "4 left"`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		textOf(`#p-WATCH-42 .left`, &left),
		screenshot(t, "shop"),
		// The shopper's dashboard: the same order, with its timeline.
		clickOn(`#nav a[data-page="myorders"]`),
		visible(`#orders > li .timeline`, 10*time.Second),
		poll(`[...document.querySelectorAll("#orders > li .timeline .step")].map(s => s.textContent).join(" ") === "PENDING RESERVED AUTHORIZED CONFIRMED"`, 10*time.Second),
		chromedp.Evaluate(`document.querySelector("#catalogue").offsetParent === null`, &catalogueHidden),
		screenshot(t, "shopper-dashboard"),
		chromedp.Evaluate(`window.__csp`, &violations),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Markup injected into the page (as a cross-site scripting bug would
	// let an attacker do) runs no script and applies no style.
	var injectedRan bool
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`document.body.insertAdjacentHTML("beforeend",
			'<img src="/nope.png" onerror="window.__pwned = 1"><style>body { display: none }</style>'); 0`, nil),
		chromedp.Poll(`window.__csp.length >= 2 || window.__pwned !== undefined`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Evaluate(`window.__pwned !== undefined || getComputedStyle(document.body).display === "none"`, &injectedRan),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Close the browser and wait for it, before its profile is removed.
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing the browser: %v", err)
	}
	if len(violations) > 0 {
		t.Errorf("the page's Content-Security-Policy refused its own code: %q", violations)
	}
	if injectedRan {
		t.Error("markup injected into the page ran its inline script or style")
	}
	if !strings.Contains(who, "Web Shopper") || badge != "CONFIRMED" || live != "live" || left != "4 left" {
		t.Errorf("page shows who=%q badge=%q live=%q left=%q", who, badge, live, left)
	}
	if !catalogueHidden {
		t.Error("the dashboard still shows the catalogue")
	}
	// The order the page placed is the one the API has, confirmed.
	var n int
	if err := sys.Pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.orders WHERE status = 'CONFIRMED' AND total_cents = 12900`).Scan(&n); err != nil || n != 1 {
		t.Errorf("confirmed orders %d, %v", n, err)
	}
}

// recordCSP has every page the tab opens record what its
// Content-Security-Policy refuses, in window.__csp: a policy that blocks
// a page's own code would break it silently.
func recordCSP() chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__csp = [];
			document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));`).Do(ctx)
		return err
	})
}

// cspViolations fails the test with what the page's policy refused.
func cspViolations(t *testing.T, what string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var violations []string
		if err := chromedp.Evaluate(`window.__csp || []`, &violations).Do(ctx); err != nil {
			return err
		}
		if len(violations) > 0 {
			t.Errorf("%s: the Content-Security-Policy refused the page's own code: %q", what, violations)
		}
		return nil
	})
}

// The pages redraw what changes (an order's row on each of its events, the
// health cards every few seconds), so a node found in one step of a test
// may be gone in the next. textOf, clickOn and visible each act in one
// step inside the page.

// textOf reads the text of the element sel finds ("" if none).
func textOf(sel string, into *string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, sel), into)
}

// clickOn clicks the element sel finds.
func clickOn(sel string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q).click(), true)`, sel), nil)
}

// visible waits until sel finds an element that is shown.
func visible(sel string, within time.Duration) chromedp.Action {
	return poll(fmt.Sprintf(`(e => !!e && e.offsetParent !== null)(document.querySelector(%q))`, sel), within)
}

// poll waits until a JavaScript expression is true in the page.
func poll(expr string, within time.Duration) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(within))
}

// screenshot saves the whole page as NAME.png in the directory that
// ORDERSAGA_SCREENSHOTS names, when it does, for a person to look at.
func screenshot(t *testing.T, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		dir := os.Getenv("ORDERSAGA_SCREENSHOTS")
		if dir == "" {
			return nil
		}
		var png []byte
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			return err
		}
		t.Logf("screenshot: %s", path)
		return nil
	})
}

// profileDir is the browser's profile. Chromium's helper processes may
// still write to it for a moment after the browser exits, so its removal
// retries instead of failing the test the way t.TempDir's would.
func profileDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ordersaga-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", dir)
	})
	return dir
}

// browser starts a headless Chromium with a profile of its own and returns
// a tab's context that ends after timeout or with the test.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profileDir(t)),
		chromedp.WindowSize(1300, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The pinned CDP bindings predate some of this Chromium's event fields;
	// those decode errors are noise, anything else is reported.
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Logf("chromedp: %s", msg)
		}
	}))
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx
}
