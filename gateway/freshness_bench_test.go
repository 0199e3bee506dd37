package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkProductFreshness measures how stale the gateway's product cache
// lets a page be: the time from an admin's stock adjustment being answered
// (its 200) to a GET of the product page answering the new stock, while 8
// other clients read the page as fast as they can, so that it is served
// from the cache and the gateway is busy. It reports the median and the 99th
// percentile in milliseconds; API.md allows 100 ms.
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

	want := available()
	lags := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		delta := 1 - 2*(i%2) // +1, -1, …: the stock stays put
		if r := s.do("POST", "/api/v1/products/"+sku+"/stock", s.admin, map[string]any{"warehouse": "east", "delta": delta, "reason": "bench"}); r.Status != 200 {
			b.Fatalf("adjust: %d %s", r.Status, r.Body)
		}
		answered := time.Now()
		want += delta
		for available() != want {
			if time.Since(answered) > 10*time.Second {
				b.Fatalf("the page never showed %d available", want)
			}
		}
		lags = append(lags, time.Since(answered))
	}
	b.StopTimer()
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
}
