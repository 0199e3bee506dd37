package faultrun

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// LoadOptions shape the load.
type LoadOptions struct {
	// Orders is the least number of orders to place.
	Orders int
	// Rate is how many orders per second are placed.
	Rate float64
	// Concurrency bounds the orders in flight (placing, retrying, cancelling).
	Concurrency int
	// CancelShare is the share of orders that are cancelled at some moment.
	CancelShare float64
	// Seed makes the mix repeatable.
	Seed uint64
}

// paymentMix covers every token of API.md, mostly tok_ok.
var paymentMix = []struct {
	token  string
	weight int
}{
	{"tok_ok", 55}, {"tok_slow", 10}, {"tok_transient_error", 10},
	{"tok_capture_fails", 9}, {"tok_declined", 8}, {"tok_insufficient_funds", 8},
}

// Load places orders through the API as careful shoppers do, and cancels
// some of them at random moments: right after the 202, a little later
// (mid-saga), or much later (usually after the capture: a 409).
type Load struct {
	api      *API
	shoppers []Shopper
	cat      Catalogue
	timeline *Timeline
	// track hears of every order id the API named, so the websocket
	// client can resume it.
	track func(orderID string, firstAttempt time.Time)
	log   *zap.Logger

	rngMu sync.Mutex
	rng   *rand.Rand

	mu         sync.Mutex
	placements []*Placement
}

// NewLoad returns a load over the given shoppers and catalogue.
func NewLoad(api *API, shoppers []Shopper, cat Catalogue, timeline *Timeline, track func(string, time.Time), seed uint64, log *zap.Logger) *Load {
	return &Load{api: api, shoppers: shoppers, cat: cat, timeline: timeline, track: track, log: log,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Run places orders at opts.Rate until at least opts.Orders are placed and
// done is closed (the faults are over), or ctx ends; then it waits for
// every order's retries and cancel to finish.
func (l *Load) Run(ctx context.Context, opts LoadOptions, done <-chan struct{}) {
	interval := time.Duration(float64(time.Second) / opts.Rate)
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	placed := 0
	for {
		if placed >= opts.Orders {
			select {
			case <-done:
				wg.Wait()
				return
			default:
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-ticker.C:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		placed++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			l.place(ctx, opts)
		}()
	}
}

// Placements returns what was placed; call it once Run has returned.
func (l *Load) Placements() []Placement {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Placement, len(l.placements))
	for i, p := range l.placements {
		out[i] = *p
	}
	return out
}

type orderItem struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type orderRequest struct {
	Items         []orderItem `json:"items"`
	PaymentMethod string      `json:"payment_method"`
}

func (l *Load) place(ctx context.Context, opts LoadOptions) {
	shopper, req, cancelAfter := l.draw(opts)
	p := &Placement{Key: uuid.NewString(), CustomerID: shopper.ID, Window: l.timeline.Current(), FirstAttempt: time.Now()}
	l.mu.Lock()
	l.placements = append(l.placements, p)
	l.mu.Unlock()

	answers := l.api.Call(ctx, Request{Method: http.MethodPost, Path: "/orders", Token: shopper.Token, IdempotencyKey: p.Key, Body: req}, nil)
	orderID := ""
	for _, a := range answers {
		if a.Status >= 200 && a.Status < 300 && a.OrderID != "" {
			orderID = a.OrderID
			break
		}
	}
	l.mu.Lock()
	p.Answers, p.OrderID = answers, orderID
	l.mu.Unlock()
	if orderID == "" {
		l.log.Warn("order got no 2xx", zap.String("idempotency_key", p.Key), zap.String("last", describe(answers[len(answers)-1])))
		return
	}
	l.track(orderID, p.FirstAttempt)
	if cancelAfter < 0 {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(cancelAfter):
	}
	c := &Cancel{Delay: cancelAfter}
	c.Answers = l.api.Call(ctx, Request{Method: http.MethodPost, Path: "/orders/" + orderID + "/cancel", Token: shopper.Token,
		Body: map[string]string{"reason": "customer"}}, nil)
	l.mu.Lock()
	p.Cancel = c
	l.mu.Unlock()
}

// draw picks a shopper, the order and when to cancel it (-1: never).
func (l *Load) draw(opts LoadOptions) (Shopper, orderRequest, time.Duration) {
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	r := l.rng
	shopper := l.shoppers[r.IntN(len(l.shoppers))]
	req := orderRequest{PaymentMethod: pickToken(r)}
	n := 1 + r.IntN(3)
	for _, i := range r.Perm(len(l.cat.Plenty))[:n] {
		req.Items = append(req.Items, orderItem{SKU: l.cat.Plenty[i], Quantity: 1 + r.IntN(3)})
	}
	if r.Float64() < 0.25 {
		req.Items = append(req.Items, orderItem{SKU: l.cat.Scarce[r.IntN(len(l.cat.Scarce))], Quantity: 1 + r.IntN(2)})
	}
	cancel := time.Duration(-1)
	if r.Float64() < opts.CancelShare {
		switch x := r.Float64(); {
		case x < 0.35:
			cancel = 0 // right after the 202: often within the workflow's first task
		case x < 0.65:
			cancel = time.Duration(100+r.IntN(1900)) * time.Millisecond // mid-saga
		case x < 0.85:
			cancel = time.Duration(3000+r.IntN(7000)) * time.Millisecond
		default:
			cancel = time.Duration(15000+r.IntN(15000)) * time.Millisecond // usually too late: 409
		}
	}
	return shopper, req, cancel
}

func pickToken(r *rand.Rand) string {
	total := 0
	for _, m := range paymentMix {
		total += m.weight
	}
	x := r.IntN(total)
	for _, m := range paymentMix {
		if x < m.weight {
			return m.token
		}
		x -= m.weight
	}
	panic(fmt.Sprintf("pickToken: %d out of range", x))
}
