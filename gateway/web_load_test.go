package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// TestShopPageReadsStockSparingly: a shopper with past orders signs in.
// The page lists them without reading the catalogue again (their stock
// moved long ago); when several orders end live within moments, the page
// reads the stock once for them all, not once per order and product, and
// shows what the API says.
func TestShopPageReadsStockSparingly(t *testing.T) {
	sys := system.Start(t, system.Options{})
	skus := []string{"CUP-1", "CUP-2", "CUP-3", "CUP-4"}
	for _, s := range skus {
		sys.Product(s, 1500, 50)
	}
	const email, password = "regular@example.com", "password123"
	if status, body := sys.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": "Regular"}); status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}
	token := sys.Login(email, password)
	var past []uuid.UUID
	for i, method := range []string{"tok_ok", "tok_ok", "tok_declined", "tok_ok", "tok_ok", "tok_ok"} {
		past = append(past, sys.PlaceOrder(token, skus[i%len(skus)], 1, method))
	}
	for _, id := range past {
		sys.WaitStatus(token, id, 30*time.Second, "CONFIRMED", "REJECTED")
	}

	ctx := browser(t, 120*time.Second)
	var atSignIn, live int
	var shown string
	cardsLeft := `[...document.querySelectorAll("#products .card")].map(c => c.id.slice(2) + " " + c.querySelector(".left").textContent).join(", ")`
	err := chromedp.Run(ctx,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/"),
		poll(`document.querySelectorAll("#products .card").length === 4`, 10*time.Second),
		chromedp.ActionFunc(func(context.Context) error { atSignIn = productReads(t, sys); return nil }),
		chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		poll(`document.querySelector("#live").textContent === "live" && document.querySelectorAll("#orders > li .badge").length === 6`, 15*time.Second),
		// Time for a page that reads the stock per order to do so.
		chromedp.Sleep(1500*time.Millisecond),
		chromedp.ActionFunc(func(context.Context) error {
			n := productReads(t, sys) - atSignIn
			t.Logf("signing in with 6 past orders and 4 products on the page: %d product reads", n)
			if n > 1 {
				t.Errorf("signing in with 6 ended orders, the page read products %d times, want at most 1", n)
			}
			// Three orders end within moments, live.
			live = productReads(t, sys)
			var ids []uuid.UUID
			for _, s := range skus[:3] {
				ids = append(ids, sys.PlaceOrder(token, s, 1, "tok_ok"))
			}
			for _, id := range ids {
				sys.WaitStatus(token, id, 30*time.Second, "CONFIRMED")
			}
			return nil
		}),
		poll(`[...document.querySelectorAll("#orders > li .badge")].filter(b => b.textContent === "CONFIRMED").length === 8`, 15*time.Second),
		chromedp.ActionFunc(func(ctx context.Context) error {
			// The cards come to show what the API has, and stay so.
			return poll(fmt.Sprintf(`%s === %q`, cardsLeft, stockLeft(t, sys, skus)), 15*time.Second).Do(ctx)
		}),
		chromedp.Sleep(1500*time.Millisecond),
		chromedp.Evaluate(cardsLeft, &shown),
		cspViolations(t, "the shop"),
	)
	if err != nil {
		_ = chromedp.Run(ctx, chromedp.Evaluate(cardsLeft, &shown))
		t.Fatalf("browser: %v; the cards show %q", err, shown)
	}
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing the browser: %v", err)
	}
	if want := stockLeft(t, sys, skus); shown != want {
		t.Errorf("the cards show %q, the API %q", shown, want)
	}
	n := productReads(t, sys) - live
	t.Logf("3 orders ending live: %d product reads", n)
	if n > 3 {
		t.Errorf("3 orders ending live made the page read products %d times, want at most 3 (one per refresh of the list)", n)
	}
}

// productReads is how many GET requests the gateway has answered on the
// product routes (the list, one product, its movements).
func productReads(t *testing.T, sys *system.System) int {
	t.Helper()
	families, err := sys.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "ordersaga_http_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == "GET" && strings.HasPrefix(labels["route"], "/api/v1/products") {
				n += int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}

// stockLeft is what the cards of skus should say, as the stock ledger
// has it (read from the database, so that the test's own reads do not
// count as the page's).
func stockLeft(t *testing.T, sys *system.System, skus []string) string {
	t.Helper()
	var says []string
	for _, s := range skus {
		var available int
		if err := sys.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(on_hand - reserved), 0) FROM catalog.stock WHERE sku = $1`, s).Scan(&available); err != nil {
			t.Fatalf("stock of %s: %v", s, err)
		}
		says = append(says, fmt.Sprintf("%s %d left", s, available))
	}
	return strings.Join(says, ", ")
}
