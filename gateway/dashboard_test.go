package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// TestAdminAndShopperInBrowsers is an admin and a shopper, each in a
// browser of their own: the admin creates a product (meeting the API's
// error next to the field first) and adds stock; the shopper orders it;
// both see the order reach CONFIRMED live; the admin reads its timeline,
// follows its workflow's link, sees the commit in the stock ledger,
// cancels a second order and filters the orders by status. A customer at
// /admin is told it is for admins only.
func TestAdminAndShopperInBrowsers(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	const ui = "http://127.0.0.1:8233"
	sys := system.Start(t, system.Options{TemporalAddress: addr, Namespace: ns, SlowDelay: 30 * time.Second,
		Env: map[string]string{"TEMPORAL_UI_URL": ui + "/namespaces/" + ns + "/workflows"}})
	const email, password = "dana@example.com", "password123"
	if status, body := sys.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": "Dana Shopper"}); status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}

	admin := browser(t, 180*time.Second)
	fill := func(sel, value string) chromedp.Action { return chromedp.SendKeys(sel, value, chromedp.ByQuery) }
	click := func(sel string) chromedp.Action { return chromedp.Click(sel, chromedp.ByQuery) }

	// The admin signs in at /admin (a visitor sees only the sign-in) and
	// creates a product.
	var appHiddenSignedOut bool
	var brandError, adjustReasonError, title, onHand string
	err := chromedp.Run(admin,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/admin"),
		chromedp.WaitVisible(`#auth`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#app").hidden`, &appHiddenSignedOut),
		fill(`#email`, "root@example.com"),
		fill(`#password`, "admin-password"),
		click(`#login button[type=submit]`),
		chromedp.WaitVisible(`#productForm`, chromedp.ByQuery),
		fill(`#productForm [name=sku]`, "lamp-7"),
		fill(`#productForm [name=name]`, "Desk lamp"),
		fill(`#productForm [name=description]`, "A lamp with a warm light."),
		fill(`#productForm [name=price]`, "49.90"),
		// No brand: the API refuses it, and says so next to the field.
		click(`#save`),
		poll(`document.querySelector('.field-error[data-for="brand"]').textContent !== ""`, 10*time.Second),
		textOf(`.field-error[data-for="brand"]`, &brandError),
		fill(`#productForm [name=brand]`, "Lumen"),
		click(`#save`),
		poll(`document.querySelector("#editorTitle").textContent === "LAMP-7" && !document.querySelector("#stockBox").hidden`, 10*time.Second),
		textOf(`#editorTitle`, &title),
		// Stock: without a reason the API refuses it, next to the field.
		fill(`#adjustForm [name=warehouse]`, "east"),
		fill(`#adjustForm [name=units]`, "5"),
		click(`#addStock`),
		poll(`document.querySelector('.field-error[data-for="reason"]').textContent !== ""`, 10*time.Second),
		textOf(`.field-error[data-for="reason"]`, &adjustReasonError),
		fill(`#adjustForm [name=reason]`, "first delivery"),
		click(`#addStock`),
		poll(`document.querySelector('#stockRows tr[data-warehouse="east"] td:nth-child(2)')?.textContent === "5"`, 10*time.Second),
		textOf(`#stockRows tr[data-warehouse="east"] td:nth-child(2)`, &onHand),
		// The ledger has the adjustment.
		poll(`!!document.querySelector('#mvRows tr[data-kind="adjust"]')`, 10*time.Second),
		// The admin watches every order, live, from before the shopper's.
		clickOn(`#nav a[data-page="orders"]`),
		visible(`#ordersView`, 10*time.Second),
		poll(`document.querySelector("#live").textContent === "live"`, 10*time.Second),
	)
	if err != nil {
		var says string
		_ = chromedp.Run(admin, textOf(`#productsView`, &says))
		t.Fatalf("admin: %v; the page says: %.600s", err, strings.Join(strings.Fields(says), " "))
	}
	if !appHiddenSignedOut || !strings.Contains(brandError, "brand") || !strings.Contains(adjustReasonError, "reason") || title != "LAMP-7" || onHand != "5" {
		t.Errorf("admin saw: app hidden signed out=%v, brand error %q, reason error %q, title %q, on hand %q",
			appHiddenSignedOut, brandError, adjustReasonError, title, onHand)
	}

	// The shopper, in a browser context of their own (their own storage),
	// orders it and sees it confirmed.
	shopper, cancelShopper := chromedp.NewContext(admin, chromedp.WithNewBrowserContext())
	defer cancelShopper()
	var id, forbidden string
	var appHiddenForCustomer bool
	err = chromedp.Run(shopper,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/"),
		chromedp.WaitVisible(`#p-LAMP-7`, chromedp.ByQuery),
		fill(`#email`, email),
		fill(`#password`, password),
		click(`#login button[type=submit]`),
		chromedp.WaitVisible(`#logout`, chromedp.ByQuery),
		poll(`document.querySelector("#live").textContent === "live"`, 10*time.Second),
		click(`#p-LAMP-7 button`),
		click(`#order`),
		visible(`#orders .badge.CONFIRMED`, 30*time.Second),
		chromedp.Evaluate(`document.querySelector("#orders > li").id.slice(2)`, &id),
		cspViolations(t, "the shop"),
	)
	if err != nil {
		t.Fatalf("shopper: %v", err)
	}

	// The admin saw it arrive and reach CONFIRMED without reloading.
	order := `#ao-` + id
	workflow := ui + "/namespaces/" + ns + "/workflows/order-" + id
	var steps []string
	var href, badge string
	var cancelHidden bool
	err = chromedp.Run(admin,
		poll(fmt.Sprintf(`document.querySelector(%q)?.textContent === "CONFIRMED"`, order+" .badge"), 20*time.Second),
		textOf(order+" .badge", &badge),
		clickOn(order+" tr.clickable"),
		poll(fmt.Sprintf(`document.querySelectorAll(%q).length === 4`, order+" .timeline .step"), 10*time.Second),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(s => s.textContent)`, order+" .timeline .step"), &steps),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).href`, order+" a.temporal"), &href),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).hidden`, order+" button.cancel"), &cancelHidden),
		screenshot(t, "admin-orders"),
	)
	if err != nil {
		t.Fatalf("admin, orders: %v", err)
	}
	if badge != "CONFIRMED" || strings.Join(steps, " ") != "PENDING RESERVED AUTHORIZED CONFIRMED" || href != workflow || !cancelHidden {
		t.Errorf("admin's order: badge %q, timeline %q, workflow link %q (want %q), cancel hidden %v", badge, steps, href, workflow, cancelHidden)
	}

	// The ledger row of the commit: one unit leaves east for the order.
	var commit struct {
		OnHand, Reserved, Why string
	}
	var stock string
	err = chromedp.Run(admin,
		clickOn(`#nav a[data-page="products"]`),
		visible(`#movements`, 10*time.Second),
		poll(`!!document.querySelector('#mvRows tr[data-kind="commit"]')`, 15*time.Second),
		chromedp.Evaluate(`(() => { const r = document.querySelector('#mvRows tr[data-kind="commit"]').cells;
			return { onHand: r[3].textContent, reserved: r[4].textContent, why: r[5].textContent }; })()`, &commit),
		poll(`document.querySelector('#stockRows tr[data-warehouse="east"]')?.textContent === "east404"`, 10*time.Second),
		textOf(`#stockRows tr[data-warehouse="east"]`, &stock),
		screenshot(t, "admin-products"),
	)
	if err != nil {
		t.Fatalf("admin, movements: %v", err)
	}
	if commit.OnHand != "−1" || commit.Reserved != "−1" || !strings.Contains(commit.Why, id[:8]) || stock != "east404" {
		t.Errorf("the commit's ledger row: %+v, want on hand −1, reserved −1, naming order %s; stock in east %q", commit, id[:8], stock)
	}

	// A second order, slow to authorize: the admin sees it arrive and
	// cancels it; the shopper sees it cancelled; the status filter shows
	// one or the other.
	token := sys.Login(email, password)
	second := sys.PlaceOrder(token, "LAMP-7", 1, "tok_slow")
	sys.WaitStatus(token, second, 30*time.Second, "RESERVED")
	other := `#ao-` + second.String()
	var confirmedOnly, cancelledOnly []string
	shownStatuses := `[...document.querySelectorAll("#ordersTable tbody.order")].filter(tb => !tb.hidden).map(tb => tb.dataset.status)`
	err = chromedp.Run(admin,
		clickOn(`#nav a[data-page="orders"]`),
		poll(fmt.Sprintf(`!!document.querySelector(%q)`, other+" .badge"), 15*time.Second),
		clickOn(other+" tr.clickable"),
		visible(other+" button.cancel", 10*time.Second),
		clickOn(other+" button.cancel"),
		poll(fmt.Sprintf(`document.querySelector(%q)?.textContent.startsWith("CANCELLED")`, other+" .badge"), 30*time.Second),
		chromedp.SetValue(`#statusFilter`, "CONFIRMED", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#statusFilter").dispatchEvent(new Event("change"))`, nil),
		poll(`document.querySelector("#ordersNote").textContent.startsWith("1 order CONFIRMED")`, 10*time.Second),
		chromedp.Evaluate(shownStatuses, &confirmedOnly),
		chromedp.SetValue(`#statusFilter`, "CANCELLED", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#statusFilter").dispatchEvent(new Event("change"))`, nil),
		poll(`document.querySelector("#ordersNote").textContent.startsWith("1 order CANCELLED")`, 10*time.Second),
		chromedp.Evaluate(shownStatuses, &cancelledOnly),
		cspViolations(t, "the admin page"),
	)
	if err != nil {
		t.Fatalf("admin, cancel: %v", err)
	}
	if strings.Join(confirmedOnly, ",") != "CONFIRMED" || strings.Join(cancelledOnly, ",") != "CANCELLED" {
		t.Errorf("filtered by status, the admin sees %q and %q", confirmedOnly, cancelledOnly)
	}
	if got := sys.Outcome(second); got != "CANCELLED(admin)" {
		t.Errorf("the cancelled order is %s", got)
	}

	// The admin changes the price, deactivates the product (the list says
	// so) and reactivates it.
	var row, afterReactivate string
	err = chromedp.Run(admin,
		clickOn(`#nav a[data-page="products"]`),
		visible(`#productForm`, 10*time.Second),
		chromedp.SetValue(`#productForm [name=price]`, "44.50", chromedp.ByQuery),
		click(`#save`),
		poll(`document.querySelector("#pr-LAMP-7")?.cells[3].textContent === "44.50 USD"`, 10*time.Second),
		click(`#deactivate`),
		poll(`document.querySelector("#activeBadge").textContent === "inactive" && !document.querySelector("#reactivate").hidden`, 10*time.Second),
		textOf(`#pr-LAMP-7`, &row),
		click(`#reactivate`),
		poll(`document.querySelector("#activeBadge").textContent === "active"`, 10*time.Second),
		textOf(`#pr-LAMP-7`, &afterReactivate),
	)
	if err != nil {
		t.Fatalf("admin, edit: %v", err)
	}
	if !strings.HasSuffix(row, "inactive") || !strings.HasSuffix(afterReactivate, "4") {
		t.Errorf("the product's row: deactivated %q, reactivated %q", row, afterReactivate)
	}
	var p struct {
		PriceCents int64 `json:"price_cents"`
		Active     bool
	}
	if status, body := sys.Do("GET", "/api/v1/products/LAMP-7", "", nil); status != 200 || json.Unmarshal(body, &p) != nil || p.PriceCents != 4450 || !p.Active {
		t.Errorf("LAMP-7 after the edits: %d %s", status, body)
	}

	// The shopper's dashboard: both orders, each with its timeline, the
	// cancellation pushed live. At /admin a customer sees a notice.
	var shopperSteps []string
	err = chromedp.Run(shopper,
		clickOn(`#nav a[data-page="myorders"]`),
		poll(fmt.Sprintf(`document.querySelector(%q)?.textContent.startsWith("CANCELLED")`, "#o-"+second.String()+" .badge"), 15*time.Second),
		poll(fmt.Sprintf(`document.querySelectorAll(%q).length === 4`, "#o-"+id+" .timeline .step"), 10*time.Second),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(s => s.textContent)`, "#o-"+second.String()+" .timeline .step"), &shopperSteps),
		screenshot(t, "shopper-dashboard-two-orders"),
		chromedp.Navigate(sys.GatewayURL+"/admin"),
		visible(`#forbidden`, 10*time.Second),
		textOf(`#forbidden`, &forbidden),
		chromedp.Evaluate(`document.querySelector("#app").hidden`, &appHiddenForCustomer),
	)
	if err != nil {
		t.Fatalf("shopper, dashboard: %v", err)
	}
	if n := len(shopperSteps); n < 3 || shopperSteps[0] != "PENDING" || shopperSteps[n-1] != "CANCELLED" {
		t.Errorf("the shopper's timeline of the cancelled order: %q", shopperSteps)
	}
	if !strings.Contains(forbidden, "Admins only") || !strings.Contains(forbidden, "Dana Shopper") || !appHiddenForCustomer {
		t.Errorf("a customer at /admin sees %q (app hidden: %v)", forbidden, appHiddenForCustomer)
	}
	if err := chromedp.Cancel(admin); err != nil {
		t.Logf("closing the browser: %v", err)
	}
}

// TestSystemPageInABrowser: an operator's view of the system. Every
// component is up, the charts show the orders just placed, and a stopped
// payment worker turns red within 15 s, then green when it returns.
func TestSystemPageInABrowser(t *testing.T) {
	sys := system.Start(t, system.Options{NoWorkers: true})
	sys.StartWorker("order")
	sys.StartWorker("product")
	stopPayment := sys.StartWorker("payment")
	sys.Product("GLOBE-1", 2500, 100)
	token, _ := sys.Customer()

	ctx := browser(t, 150*time.Second)
	payment := `document.querySelector('#components [data-name="payment worker"]')`
	components := `[...document.querySelectorAll("#components .component")].map(c => c.dataset.name + ":" + (c.classList.contains("up") ? "up" : "down"))`
	var up []string
	err := chromedp.Run(ctx,
		recordCSP(),
		chromedp.Navigate(sys.GatewayURL+"/admin/system"),
		chromedp.WaitVisible(`#auth`, chromedp.ByQuery),
		chromedp.SendKeys(`#email`, "root@example.com", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "admin-password", chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#components`, chromedp.ByQuery),
		poll(components+`.length === 6 && `+components+`.every(c => c.endsWith(":up"))`, 30*time.Second),
		chromedp.Evaluate(components, &up),
	)
	if err != nil {
		t.Fatalf("system page: %v (components %q)", err, up)
	}

	// Orders, confirmed and rejected; the charts show them.
	for _, method := range []string{"tok_ok", "tok_ok", "tok_ok", "tok_declined"} {
		id := sys.PlaceOrder(token, "GLOBE-1", 1, method)
		sys.WaitStatus(token, id, 30*time.Second, "CONFIRMED", "REJECTED")
	}
	var charts []string
	var peak string
	legendPeak := `(() => {
		const row = [...document.querySelectorAll("#chart-orders .u-legend tr.u-series")].find(r => r.querySelector(".u-label")?.textContent === "confirmed");
		return row ? row.querySelectorAll("td")[1].textContent : "";
	})()`
	err = chromedp.Run(ctx,
		poll(`parseFloat(`+legendPeak+`) > 0`, 30*time.Second),
		chromedp.Evaluate(legendPeak, &peak),
		chromedp.Evaluate(`[...document.querySelectorAll("#charts .chart")].filter(c => c.querySelector("canvas")).map(c => c.dataset.chart)`, &charts),
		screenshot(t, "system"),
		cspViolations(t, "the system page"),
	)
	if err != nil {
		var m json.RawMessage
		_, body := sys.Do("GET", "/api/v1/system/metrics", sys.AdminToken, nil)
		_ = json.Unmarshal(body, &m)
		t.Fatalf("monitoring: %v (orders' peak %q; metrics %.400s)", err, peak, m)
	}
	for _, want := range []string{"orders", "order_latency", "gateway_requests", "gateway_latency", "postgres_connections", "postgres_size",
		"kafka_events", "kafka_bytes", "kafka_lag", "temporal_backlog", "temporal_schedule_to_start"} {
		if !strings.Contains(","+strings.Join(charts, ",")+",", ","+want+",") {
			t.Errorf("no chart %s drawn; drawn: %q", want, charts)
		}
	}

	// The payment worker stops: red within 15 s; back: green again.
	stopPayment()
	stopped := time.Now()
	var downAfter time.Duration
	var state, seen string
	err = chromedp.Run(ctx,
		poll(payment+`?.classList.contains("down")`, 15*time.Second),
		chromedp.ActionFunc(func(context.Context) error { downAfter = time.Since(stopped); return nil }),
		textOf(`#components [data-name="payment worker"] .state`, &state),
		textOf(`#components [data-name="payment worker"] .seen`, &seen),
		screenshot(t, "system-payment-down"),
	)
	if err != nil {
		t.Fatalf("the stopped payment worker is not shown down within 15 s: %v", err)
	}
	t.Logf("the payment worker showed down %v after it stopped (%s)", downAfter.Round(100*time.Millisecond), seen)
	if state != "down" || !strings.HasPrefix(seen, "last seen") {
		t.Errorf("the stopped payment worker shows %q, %q", state, seen)
	}
	sys.StartWorker("payment")
	err = chromedp.Run(ctx,
		poll(payment+`?.classList.contains("up")`, 20*time.Second),
	)
	if err != nil {
		t.Fatalf("the restarted payment worker is not shown up: %v", err)
	}
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing the browser: %v", err)
	}
}
