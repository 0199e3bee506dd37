package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/readcache"
)

// The product page, GET /products/{sku}, is the catalogue's hot read. Each
// gateway keeps the pages it served, as the JSON it answered, in a
// readcache that the catalogue's change feed keeps fresh (see
// inventory.ChangeFeed): a page is dropped as soon as a poll reports a
// change of its product or stock, and the cache answers only while the feed
// is current, so that no page is more than readcache.Options.MaxLag staler
// than the database. The admin handlers that change a product drop its page
// themselves once the change is made, so that an admin reads their own
// change on the next request to the same gateway, without waiting for a
// poll. Nothing that protects stock reads the cache: reservations are
// decided in the ledger's SQL.

// productPage loads the JSON of a product page from the catalogue.
func (s *Server) productPage(ctx context.Context, sku string) ([]byte, error) {
	p, err := s.catalog.Get(ctx, sku)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode product %s: %w", sku, err)
	}
	return b, nil
}

// productCacheCollector exports the product cache's figures.
type productCacheCollector struct {
	cache   *readcache.Cache[[]byte]
	gets    *prometheus.Desc
	serving *prometheus.Desc
}

func newProductCacheCollector(c *readcache.Cache[[]byte]) *productCacheCollector {
	return &productCacheCollector{cache: c,
		gets: prometheus.NewDesc("ordersaga_product_cache_gets_total",
			"Product pages asked of the gateway's cache, by result: hit, miss (loaded and kept), bypass (loaded while the catalogue's change feed was not current).",
			[]string{"result"}, nil),
		serving: prometheus.NewDesc("ordersaga_product_cache_serving",
			"1 while the product cache answers (its change feed is current), else 0.", nil, nil),
	}
}

func (p *productCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.gets
	ch <- p.serving
}

func (p *productCacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.cache.Stats()
	ch <- prometheus.MustNewConstMetric(p.gets, prometheus.CounterValue, float64(st.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(p.gets, prometheus.CounterValue, float64(st.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(p.gets, prometheus.CounterValue, float64(st.Bypasses), "bypass")
	serving := 0.0
	if p.cache.Serving() {
		serving = 1
	}
	ch <- prometheus.MustNewConstMetric(p.serving, prometheus.GaugeValue, serving)
}

// registerProductCache adds the cache's figures to reg.
func registerProductCache(reg *prometheus.Registry, c *readcache.Cache[[]byte]) {
	if reg != nil { // a nil *Registry would be a non-nil Registerer
		metrics.Register(reg, newProductCacheCollector(c))
	}
}
