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
	var shot []byte
	var violations []string
	err := chromedp.Run(ctx,
		// Record what the page's Content-Security-Policy refuses: a policy
		// that blocks the page's own code would break it silently.
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(`window.__csp = [];
				document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));`).Do(ctx)
			return err
		}),
		chromedp.Navigate(sys.GatewayURL+"/"),
		chromedp.WaitVisible(`#p-WATCH-42`, chromedp.ByQuery),
		chromedp.SendKeys(`#email`, "web@example.com", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "password123", chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#logout`, chromedp.ByQuery),
		chromedp.Text(`#who`, &who, chromedp.ByQuery),
		chromedp.Click(`#p-WATCH-42 button`, chromedp.ByQuery),
		chromedp.Click(`#order`, chromedp.ByQuery),
		chromedp.WaitVisible(`#orders .badge.CONFIRMED`, chromedp.ByQuery),
		chromedp.Text(`#orders .badge`, &badge, chromedp.ByQuery),
		chromedp.Text(`#live`, &live, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#p-WATCH-42 .left").textContent === "4 left"`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`#p-WATCH-42 .left`, &left, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&shot),
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
	path := filepath.Join(os.TempDir(), "ordersaga-shop.png")
	if err := os.WriteFile(path, shot, 0o644); err == nil {
		t.Logf("screenshot: %s", path)
	}
	// The order the page placed is the one the API has, confirmed.
	var n int
	if err := sys.Pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.orders WHERE status = 'CONFIRMED' AND total_cents = 12900`).Scan(&n); err != nil || n != 1 {
		t.Errorf("confirmed orders %d, %v", n, err)
	}
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
