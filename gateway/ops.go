package gateway

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/internal/serve"
)

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz answers 200 when PostgreSQL and Temporal answer, else 503 naming
// the ones that do not.
func (s *Server) readyz(c *gin.Context) {
	rd := serve.Ready(c, []serve.Check{
		{Name: "postgres:auth", Ping: s.accounts.Ping},
		{Name: "postgres:catalog", Ping: s.catalog.Ping},
		{Name: "postgres:orders", Ping: s.orders.Ping},
		{Name: "temporal", Ping: func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
	})
	status := http.StatusOK
	if rd.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, rd)
}

func (s *Server) config(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"ws_url": s.settings.WSURL, "temporal_ui_url": s.settings.TemporalUIURL})
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openapiDoc)
}
