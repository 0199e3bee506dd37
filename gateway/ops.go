package gateway

import (
	"context"
	_ "embed"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
)

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz answers 200 when PostgreSQL and Temporal answer, else 503 naming
// the ones that do not.
func (s *Server) readyz(c *gin.Context) {
	checks := []ping{
		{"postgres:auth", s.accounts.Ping},
		{"postgres:catalog", s.catalog.Ping},
		{"postgres:orders", s.orders.Ping},
		{"temporal", func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
	}
	ctx, cancel := context.WithTimeout(c, 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := map[string]string{}
	var failing []string
	for _, p := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				results[p.name] = "unavailable"
				failing = append(failing, p.name)
				return
			}
			results[p.name] = "ok"
		}()
	}
	wg.Wait()
	if len(failing) > 0 {
		sort.Strings(failing)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "failing": failing, "checks": results})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": results})
}

func (s *Server) config(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"ws_url": s.settings.WSURL, "temporal_ui_url": s.settings.TemporalUIURL})
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openapiDoc)
}
