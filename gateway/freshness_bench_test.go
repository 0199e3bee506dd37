package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/activities/inventory"
)

// BenchmarkProductFreshness measures how stale the gateway's product cache
// lets a page be: the time from a stock adjustment's end to a GET of the
// product page answering the new stock, while 8 other clients read the page
// as fast as they can, so that it is served from the cache and the gateway
// is busy. It reports the median and the 99th percentile in milliseconds;
// API.md allows 100 ms. "other_writer" adjusts through the catalogue itself,
// as the product worker's reservations and other gateways' writes do, so
// that only the change feed can tell this gateway; "same_gateway" posts the
// adjustment to this gateway, whose handler drops the page at once.
//
//	go test ./gateway -run '^$' -bench ProductFreshness -benchtime 300x
func BenchmarkProductFreshness(b *testing.B) {
	s := newStack(b, options{noWorkers: true})
	const sku = "FRESH-BENCH"
	s.product(sku, 100, map[string]int{"east": 1000})
	url := s.url + "/api/v1/products/" + sku
	available := func() int {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ Available int }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v", sku, resp.StatusCode, err)
		}
		return p.Available
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 8 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := http.Get(url); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	defer func() { close(stop); readers.Wait() }()

	catalog := inventory.NewCatalog(s.pool)
	for _, bc := range []struct {
		name   string
		adjust func(delta int)
	}{
		{"other_writer", func(delta int) {
			if _, err := catalog.AdjustStock(context.Background(), sku, "east", delta, "bench", "bench"); err != nil {
				b.Fatal(err)
			}
		}},
		{"same_gateway", func(delta int) {
			if r := s.do("POST", "/api/v1/products/"+sku+"/stock", s.admin, map[string]any{"warehouse": "east", "delta": delta, "reason": "bench"}); r.Status != 200 {
				b.Fatalf("adjust: %d %s", r.Status, r.Body)
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			want := available()
			lags := make([]time.Duration, 0, b.N)
			for i := range b.N {
				// Changes come at any moment, not just after a poll of the
				// feed, which the loop would otherwise fall in step with.
				time.Sleep(rand.N(20 * time.Millisecond))
				delta := 1 - 2*(i%2) // +1, -1, …: the stock stays put
				bc.adjust(delta)
				done := time.Now()
				want += delta
				for available() != want {
					if time.Since(done) > 10*time.Second {
						b.Fatalf("the page never showed %d available", want)
					}
				}
				lags = append(lags, time.Since(done))
			}
			slices.Sort(lags)
			ms := func(q float64) float64 {
				return float64(lags[min(len(lags)-1, int(q*float64(len(lags))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op") // the loop's time is the adjustments', not a figure of interest
			if b.N >= 100 {
				b.Logf("freshness over %d adjustments: p50 %.1f ms, p99 %.1f ms, max %.1f ms", len(lags), ms(0.5), ms(0.99), ms(1))
			}
		})
	}
}
