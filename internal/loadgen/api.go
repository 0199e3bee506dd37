package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// api speaks the gateway's REST contract (API.md) as a client does.
type api struct {
	base string
	http *http.Client
}

// httpError is an answer outside 2xx: its status and the contract's error code.
type httpError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *httpError) Error() string {
	return strings.TrimSpace(fmt.Sprintf("HTTP %d %s %s", e.Status, e.Code, e.Message))
}

// errorKind names the kind of a failed exchange for the summary: "HTTP 503
// unavailable", or "network" when no answer came.
func errorKind(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		if he.Code != "" {
			return fmt.Sprintf("HTTP %d %s", he.Status, he.Code)
		}
		return fmt.Sprintf("HTTP %d", he.Status)
	}
	return "network"
}

// do sends body as JSON and decodes a 2xx answer into out (when not nil).
func (a *api) do(ctx context.Context, method, path, token string, header map[string]string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		he := &httpError{Status: resp.StatusCode}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			he.Code, he.Message = e.Error.Code, e.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return resp.StatusCode, he
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// withRetryAfter repeats f while the gateway answers 429, waiting as its
// Retry-After says: registration is limited per address, and a load
// generator registers many customers from one.
func withRetryAfter(ctx context.Context, f func() error) error {
	for {
		err := f()
		var he *httpError
		if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(he.RetryAfter, time.Second)):
		}
	}
}

func (a *api) login(ctx context.Context, email, password string) (token string, err error) {
	var out struct {
		Token string `json:"token"`
		User  struct {
			ID   uuid.UUID  `json:"id"`
			Role order.Role `json:"role"`
		} `json:"user"`
	}
	err = withRetryAfter(ctx, func() error {
		_, err := a.do(ctx, http.MethodPost, "/api/v1/auth/login", "", nil, map[string]string{"email": email, "password": password}, &out)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sign in as %s: %w", email, err)
	}
	return out.Token, nil
}

func (a *api) register(ctx context.Context, email, password, name string) error {
	err := withRetryAfter(ctx, func() error {
		_, err := a.do(ctx, http.MethodPost, "/api/v1/auth/register", "", nil, map[string]string{"email": email, "password": password, "name": name}, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("register %s: %w", email, err)
	}
	return nil
}

func (a *api) createProduct(ctx context.Context, adminToken, sku string, onHand int) error {
	body := map[string]any{
		"sku": sku, "name": "Load " + sku, "brand": "ordersaga load", "description": "made by ordersaga load",
		"price_cents": 1000, "stock": []map[string]any{{"warehouse": "load", "on_hand": onHand}},
	}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/products", adminToken, nil, body, nil); err != nil {
		return fmt.Errorf("create product %s: %w", sku, err)
	}
	return nil
}

// wsURL asks the gateway where its websocket hub listens.
func (a *api) wsURL(ctx context.Context) (string, error) {
	var out struct {
		WSURL string `json:"ws_url"`
	}
	if _, err := a.do(ctx, http.MethodGet, "/api/v1/config", "", nil, nil, &out); err != nil {
		return "", fmt.Errorf("read the gateway's config: %w", err)
	}
	if out.WSURL == "" {
		return "", errors.New("the gateway's config names no ws_url")
	}
	return out.WSURL, nil
}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type placed struct {
	ID     uuid.UUID    `json:"id"`
	Status order.Status `json:"status"`
}

func (a *api) placeOrder(ctx context.Context, token, key string, lines []line, paymentMethod string) (placed, error) {
	var out placed
	_, err := a.do(ctx, http.MethodPost, "/api/v1/orders", token, map[string]string{"Idempotency-Key": key},
		map[string]any{"items": lines, "payment_method": paymentMethod}, &out)
	return out, err
}

// cancel asks for the order's cancellation; accepted is false when the
// gateway answered 409 (the order had already ended).
func (a *api) cancel(ctx context.Context, token string, id uuid.UUID) (accepted bool, err error) {
	status, err := a.do(ctx, http.MethodPost, "/api/v1/orders/"+id.String()+"/cancel", token, nil, map[string]string{}, nil)
	if status == http.StatusConflict {
		return false, nil
	}
	return err == nil, err
}
