package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// TestShopPageRecoversFromAnExpiredToken: the page follows an order whose
// authorization is slow with a token that expires meanwhile. The hub closes
// the socket with 4401; the page asks the shopper to sign in again and
// shows nothing of what happens while signed out; once they have, it
// resumes the order from its last seq and shows it CONFIRMED.
func TestShopPageRecoversFromAnExpiredToken(t *testing.T) {
	sys := system.Start(t, system.Options{SlowDelay: 10 * time.Second})
	sys.Product("WATCH-42", 12900, 5)
	const email, password = "expiring@example.com", "password123"
	status, body := sys.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": "Expiring Shopper"})
	var user struct{ ID uuid.UUID }
	if status != 201 || json.Unmarshal(body, &user) != nil {
		t.Fatalf("register: %d %s", status, body)
	}
	token := sys.Login(email, password)

	ctx := browser(t, 120*time.Second)

	var id uuid.UUID
	var expires time.Time
	var whileOut, authError, live, badge string
	var rows int
	err := chromedp.Run(ctx,
		chromedp.Navigate(sys.GatewayURL+"/"),
		chromedp.WaitVisible(`#p-WATCH-42`, chromedp.ByQuery),
		// The browser is up: only now place the order and sign the page
		// in with a token that ends in about 5 s, while the order waits
		// 10 s for its authorization.
		chromedp.ActionFunc(func(ctx context.Context) error {
			id = sys.PlaceOrder(token, "WATCH-42", 1, "tok_slow")
			sys.WaitStatus(token, id, 30*time.Second, "RESERVED")
			short, exp, err := authn.New(system.Secret, 5*time.Second, time.Now).Issue(authn.Claims{UserID: user.ID, Role: "customer"})
			expires = exp
			if err != nil {
				return err
			}
			return chromedp.Evaluate(fmt.Sprintf(`localStorage.setItem("token", %q)`, short), nil).Do(ctx)
		}),
		chromedp.Reload(),
		poll(`document.querySelector("#live").textContent === "live" && !!document.querySelector("#orders .badge.RESERVED")`, 10*time.Second),
		// The hub ends the socket at the expiry; the page asks for a sign-in.
		poll(`document.querySelector("#live").textContent === "signed out" && !document.querySelector("#auth").hidden`, 15*time.Second),
		chromedp.Text(`#authError`, &authError, chromedp.ByQuery),
		chromedp.ActionFunc(func(context.Context) error {
			if late := time.Since(expires); late > 3*time.Second {
				return fmt.Errorf("the page noticed the expiry %v late", late)
			}
			sys.WaitStatus(token, id, 30*time.Second, "CONFIRMED")
			return nil
		}),
		textOf(`#orders .badge`, &whileOut),
		chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		visible(`#orders .badge.CONFIRMED`, 30*time.Second),
		// The orders come from the API first; the live connection opens
		// after them: wait for it rather than read it at once.
		chromedp.Poll(`document.querySelector("#live").textContent === "live"`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		textOf(`#orders .badge`, &badge),
		textOf(`#live`, &live),
		chromedp.Evaluate(`document.querySelectorAll("#orders > li").length`, &rows),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if err := chromedp.Cancel(ctx); err != nil {
		t.Logf("closing the browser: %v", err)
	}
	if !strings.Contains(authError, "expired") {
		t.Errorf("the sign-in prompt says %q", authError)
	}
	if whileOut != "RESERVED" {
		t.Errorf("while signed out the page showed %q: events arrived after the token expired", whileOut)
	}
	if badge != "CONFIRMED" || live != "live" || rows != 1 {
		t.Errorf("after signing in again: badge=%q live=%q rows=%d", badge, live, rows)
	}
}
