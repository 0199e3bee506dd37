package faultrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Shopper is a customer account the load places orders with.
type Shopper struct {
	ID, Email, Token string
}

// Catalogue is what the load buys: skus with stock to spare, and scarce
// skus that sell out during the run, so that reservations are refused and
// released units are sold again.
type Catalogue struct {
	Plenty, Scarce []string
}

type loginAnswer struct {
	Token string `json:"token"`
	User  struct {
		ID string `json:"id"`
	} `json:"user"`
}

// CreateAdmin adds an admin account directly in the auth schema, as
// `ordersaga admin create` does (admins are never created through the API),
// and returns its password.
func CreateAdmin(ctx context.Context, dsn, email string) (string, error) {
	pool, err := postgres.Open(ctx, dsn, 2)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	password, err := randomSecret(12)
	if err != nil {
		return "", err
	}
	if _, err := accounts.NewStore(pool).Create(ctx, email, "Fault run admin", password, order.RoleAdmin); err != nil {
		return "", fmt.Errorf("create admin: %w", err)
	}
	return password, nil
}

// Login returns a token for email.
func Login(ctx context.Context, api *API, email, password string) (loginAnswer, error) {
	var out loginAnswer
	err := api.MustCall(ctx, Request{Method: http.MethodPost, Path: "/auth/login",
		Body: map[string]string{"email": email, "password": password}}, http.StatusOK, &out)
	return out, err
}

// CreateShoppers creates n customer accounts in the auth schema and signs
// each in through the API. They are not registered through the API, whose
// per-address limit would hold the run up for a minute: registration is
// not what this run tests.
func CreateShoppers(ctx context.Context, dsn string, api *API, n int) ([]Shopper, error) {
	pool, err := postgres.Open(ctx, dsn, 2)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store := accounts.NewStore(pool)
	out := make([]Shopper, 0, n)
	for i := range n {
		email := fmt.Sprintf("shopper%02d@faultrun.test", i)
		password, err := randomSecret(12)
		if err != nil {
			return nil, err
		}
		if _, err := store.Create(ctx, email, fmt.Sprintf("Shopper %d", i), password, order.RoleCustomer); err != nil {
			return nil, fmt.Errorf("create shopper: %w", err)
		}
		l, err := Login(ctx, api, email, password)
		if err != nil {
			return nil, err
		}
		out = append(out, Shopper{ID: l.User.ID, Email: email, Token: l.Token})
	}
	return out, nil
}

// CreateCatalogue adds the run's products through the admin API, each
// with its 'initial' stock in two warehouses.
func CreateCatalogue(ctx context.Context, api *API, adminToken string) (Catalogue, error) {
	var c Catalogue
	add := func(sku string, price int64, east, west int) error {
		return api.MustCall(ctx, Request{Method: http.MethodPost, Path: "/products", Token: adminToken, Body: map[string]any{
			"sku": sku, "name": "Fault run " + sku, "brand": "Faultrun", "description": "bought by the fault run",
			"price_cents": price,
			"stock":       []map[string]any{{"warehouse": "east", "on_hand": east}, {"warehouse": "west", "on_hand": west}},
		}}, http.StatusCreated, nil)
	}
	for i := 1; i <= 6; i++ {
		sku := fmt.Sprintf("FR-PLENTY-%d", i)
		if err := add(sku, int64(500*i+99), 100000, 100000); err != nil {
			return c, err
		}
		c.Plenty = append(c.Plenty, sku)
	}
	for i := 1; i <= 3; i++ {
		sku := fmt.Sprintf("FR-SCARCE-%d", i)
		if err := add(sku, int64(9900+100*i), 4, 2); err != nil {
			return c, err
		}
		c.Scarce = append(c.Scarce, sku)
	}
	return c, nil
}

func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
