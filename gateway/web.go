package gateway

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/html"
)

// The web app's pages. Each is public HTML: what it shows comes from the
// API, with the signed-in user's token, so an admin page shown to anyone
// else holds nothing but its sign-in.
var (
	// shopPage is the shop and the shopper's dashboard: the catalogue, a
	// cart, and their orders with the timeline of each, live over the hub.
	//
	//go:embed web/index.html
	shopPage []byte
	// adminPage is the admin dashboard: products, stock and its ledger,
	// and every order, live.
	//
	//go:embed web/admin.html
	adminPage []byte
	// systemPage is the operators' page: health and monitoring charts.
	//
	//go:embed web/system.html
	systemPage []byte
)

// page serves an embedded page with its Content-Security-Policy. The
// hashes of its inline code are taken once, here: the page is embedded,
// so they cannot drift from it.
func (s *Server) page(body []byte) gin.HandlerFunc {
	policy := pagePolicy(inlineHashes(body), s.settings.WSURL)
	return func(c *gin.Context) {
		c.Header("Content-Security-Policy", policy)
		// The page names its scripts and styles by path; revalidating it
		// on each load keeps it in step with them after a deploy.
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", body)
	}
}

// inline holds the CSP hash sources of a page's inline code.
type inline struct {
	scripts, styles, styleAttrs []string
}

// inlineHashes finds a page's inline <script> and <style> elements and
// style="" attributes and returns their CSP hash sources. Hashes let the
// page keep its inline code while the policy still refuses any other
// inline code, which 'unsafe-inline' would allow: an injected <script>
// does not run.
func inlineHashes(page []byte) inline {
	var out inline
	z := html.NewTokenizer(bytes.NewReader(page))
	var in string // the raw-text element being read: "script", "style" or ""
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				panic("gateway: the embedded web page does not parse: " + z.Err().Error())
			}
			return out
		case html.StartTagToken:
			name, hasAttr := z.TagName()
			in = ""
			src := false
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch string(k) {
				case "style":
					out.styleAttrs = appendHash(out.styleAttrs, v)
				case "src":
					src = true
				}
			}
			if string(name) == "style" || (string(name) == "script" && !src) {
				in = string(name)
			}
		case html.TextToken:
			// The tokenizer returns a raw-text element's content unescaped
			// and with newlines normalised, as the browser hashes it.
			switch in {
			case "script":
				out.scripts = appendHash(out.scripts, z.Text())
			case "style":
				out.styles = appendHash(out.styles, z.Text())
			}
		case html.EndTagToken:
			in = ""
		}
	}
}

func appendHash(list []string, b []byte) []string {
	sum := sha256.Sum256(b)
	h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	for _, have := range list {
		if have == h {
			return list
		}
	}
	return append(list, h)
}

// pagePolicy is the Content-Security-Policy of a web page of the gateway:
// everything from the gateway itself, inline code only by hash, the API
// and the websocket hub (whose URL the page learns from /api/v1/config)
// for connections, and no framing (clickjacking).
func pagePolicy(in inline, wsURL string) string {
	connect := []string{"'self'"}
	if u, err := url.Parse(wsURL); err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != "" {
		connect = append(connect, u.Scheme+"://"+u.Host)
	}
	style := append([]string{"'self'"}, in.styles...)
	if len(in.styleAttrs) > 0 {
		// 'unsafe-hashes' lets exactly these style="" values apply; it
		// allows no other inline style.
		style = append(append(style, "'unsafe-hashes'"), in.styleAttrs...)
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src " + strings.Join(append([]string{"'self'"}, in.scripts...), " "),
		"style-src " + strings.Join(style, " "),
		"connect-src " + strings.Join(connect, " "),
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}
