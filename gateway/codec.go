package gateway

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/codec"
)

// codecRoutes serve Temporal's codec server protocol (POST …/encode and
// …/decode, body {"payloads":[…]} in proto JSON, the same shape back), so
// that the Temporal UI and CLI show operators the payloads that the
// workers and the gateway encrypt. Only admins may call them: decoding
// reveals every order's customer, lines and payment token.
//
// The token comes as Authorization: Bearer (the CLI's --codec-auth), or in
// the codec session cookie: the Temporal UI calls the endpoint from the
// operator's browser, and can send only cookies (its "include credentials"
// setting) or the token of its own sign-in, never ours. POST
// /codec/session, with an admin's bearer token, sets that cookie.
//
// The SDK's converter.NewPayloadCodecHTTPHandler speaks the same protocol,
// but answers errors as plain text with the codec's error text; these
// routes answer in API.md's error shape and keep that text in the log.
func (s *Server) codecRoutes(api *gin.RouterGroup) {
	api.POST("/codec/encode", s.codecAuthenticated, s.admin, s.codecCall("encode", s.codec.Encode))
	api.POST("/codec/decode", s.codecAuthenticated, s.admin, s.codecCall("decode", s.codec.Decode))
	api.POST("/codec/session", s.authenticated, s.admin, s.startCodecSession)
	api.DELETE("/codec/session", s.endCodecSession)
}

// codecCookie holds an admin's token for the codec endpoints only: HttpOnly
// (no script reads it), SameSite=Strict (no other site's page sends it),
// and scoped to codecPath (no other route accepts it). It lasts as long as
// the browser session, and the token in it no longer than the token does.
const (
	codecCookie = "ordersaga_codec"
	codecPath   = "/api/v1/codec"
)

// codecAuthenticated is authenticated, with the codec cookie standing in
// for a missing Authorization header.
func (s *Server) codecAuthenticated(c *gin.Context) {
	if c.GetHeader("Authorization") == "" {
		if tok, err := c.Cookie(codecCookie); err == nil && tok != "" {
			c.Request.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	s.authenticated(c)
}

// startCodecSession sets the codec cookie to the caller's admin token, so
// that the Temporal UI, open in the same browser on the same site, decodes
// payloads through the codec endpoint.
func (s *Server) startCodecSession(c *gin.Context) {
	token := strings.TrimPrefix(c.GetHeader("Authorization"), "Bearer ")
	http.SetCookie(c.Writer, &http.Cookie{Name: codecCookie, Value: token, Path: codecPath,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookie(c)})
	c.Status(http.StatusNoContent)
}

// endCodecSession removes the codec cookie (signing out). It needs no
// token: removing one's own cookie reveals and changes nothing else.
func (s *Server) endCodecSession(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: codecCookie, Value: "", Path: codecPath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookie(c)})
	c.Status(http.StatusNoContent)
}

func (s *Server) codecCall(op string, fn func([]*commonpb.Payload) ([]*commonpb.Payload, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		var raw json.RawMessage
		if err := decode(c, &raw); err != nil {
			s.fail(c, err)
			return
		}
		var in commonpb.Payloads
		if err := protojson.Unmarshal(raw, &in); err != nil {
			s.fail(c, apperr.New(apperr.InvalidJSON, `the body must be {"payloads":[{"metadata":{…},"data":"…"}]} in protobuf JSON, with base64 bytes`))
			return
		}
		out, err := fn(in.GetPayloads())
		if err != nil {
			s.log.Warn("codec "+op+" refused", append(requestFields(c), zap.Int("payloads", len(in.GetPayloads())), zap.Error(err))...)
			msg := "a payload could not be " + op + "d"
			if errors.Is(err, codec.ErrUnknownKey) {
				msg = "a payload is encrypted with a key that this gateway does not hold (TEMPORAL_CODEC_KEYS)"
			}
			s.fail(c, apperr.Invalid("payloads", "%s", msg))
			return
		}
		if len(out) == 0 { // protojson leaves an empty list out; clients read .payloads
			c.Data(http.StatusOK, "application/json", []byte(`{"payloads":[]}`))
			return
		}
		body, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Data(http.StatusOK, "application/json", body)
	}
}

// secureCookie says whether the codec cookie, which holds an admin token,
// is sent over TLS only: always, except to a loopback host (the local
// stack on plain http, which browsers treat as a secure context anyway).
// TLS usually ends at a proxy, so the request's own TLS says nothing.
func secureCookie(c *gin.Context) bool {
	host := c.Request.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
