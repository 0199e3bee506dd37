package gateway

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// shopPage is the web page shoppers and admins use: the catalogue, a cart,
// their orders with live status over the websocket hub.
//
//go:embed web/index.html
var shopPage []byte

func (s *Server) shop(c *gin.Context) {
	c.Header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/html; charset=utf-8", shopPage)
}
