package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

// decode reads the JSON body into v. Malformed JSON is invalid_json, a
// value of the wrong type is invalid_argument naming the field, a string
// anywhere in the body that is not valid UTF-8 or holds a NUL is
// invalid_argument naming the field (see jsonStrings), and a body past
// 1 MiB is payload_too_large.
func decode(c *gin.Context, v any) error { return decodeBody(c, v, false) }

// decodeOptional is decode for endpoints whose body may be left out.
func decodeOptional(c *gin.Context, v any) error { return decodeBody(c, v, true) }

func decodeBody(c *gin.Context, v any, optional bool) error {
	body, err := io.ReadAll(c.Request.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return apperr.New(apperr.PayloadTooLarge, "request bodies are limited to 1 MiB")
	}
	if err != nil {
		return apperr.New(apperr.InvalidJSON, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return apperr.New(apperr.InvalidJSON, "the request body must be a JSON object")
	}
	if err := jsonStrings(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			field := typeErr.Field
			if field == "" {
				return apperr.New(apperr.InvalidJSON, "the request body must be a JSON object")
			}
			return apperr.Invalid(field, "%s must be %s", field, jsonKind(typeErr.Type.Kind().String()))
		}
		return apperr.New(apperr.InvalidJSON, "the request body is not valid JSON")
	}
	if dec.More() {
		return apperr.New(apperr.InvalidJSON, "the request body holds more than one JSON value")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	}
	return "value of another type"
}

// queryInt reads an optional integer query parameter within [lo, hi].
func queryInt(c *gin.Context, name string, def, lo, hi int64) (int64, error) {
	raw, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, apperr.Invalid(name, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// pageLimit reads `limit` (1..200, default 50).
func pageLimit(c *gin.Context) (int, error) {
	n, err := queryInt(c, "limit", 50, 1, 200)
	return int(n), err
}

// API.md: every string a client sends is valid UTF-8 without NUL. PostgreSQL
// refuses both in text, so a string that reached it unchecked came back as a
// 500. The checks live here, in two places every request passes, rather than
// in each handler, where one would be forgotten: checkStrings (query, path
// parameters, the Idempotency-Key header) and decode (every JSON string).

// validText reports whether s is valid UTF-8 without NUL.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// badText is the error for a string that validText refuses.
func badText(field string) error {
	return apperr.Invalid(field, "%s must be valid UTF-8 without NUL characters", field)
}

// checkedHeaders are the request headers whose values reach the database.
var checkedHeaders = []string{"Idempotency-Key"}

// checkStrings is middleware that refuses, before any handler runs, a
// request whose query string cannot be read or holds a parameter (name or
// value) that is not valid text, whose path parameters are not valid text,
// or whose Idempotency-Key is not: 400 invalid_argument naming the field.
func (s *Server) checkStrings(c *gin.Context) {
	if err := requestStrings(c); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}

func requestStrings(c *gin.Context) error {
	if err := queryStrings(c.Request.URL.RawQuery); err != nil {
		return err
	}
	for _, p := range c.Params {
		if !validText(p.Value) {
			return badText(p.Key)
		}
	}
	for _, h := range checkedHeaders {
		if !validText(c.GetHeader(h)) {
			return badText(h)
		}
	}
	return nil
}

// queryStrings checks a raw query string pair by pair, as url.ParseQuery
// reads it. ParseQuery (and so gin's c.Query) silently drops a pair it
// cannot decode, so a client's filter would be ignored rather than refused;
// here such a pair is a 400 naming its parameter. So is a parameter given
// twice: no parameter of API.md is a list, and the handlers would read the
// first value and ignore the other.
func queryStrings(raw string) error {
	seen := map[string]bool{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || !validText(key) {
			return apperr.Invalid("query", "query parameter names must be percent-encoded UTF-8 without NUL characters")
		}
		field := key
		if field == "" {
			// "=v" has no name for an error to give; nothing reads it.
			field = "query"
		}
		if strings.Contains(pair, ";") {
			// Go no longer splits queries at ';' and drops such a pair.
			return apperr.Invalid(field, "%s holds a ';': percent-encode it as %%3B", field)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return apperr.Invalid(field, "%s is not correctly percent-encoded", field)
		}
		if !validText(value) {
			return badText(field)
		}
		if seen[key] && key != "" {
			return apperr.Invalid(field, "%s is given more than once", field)
		}
		seen[key] = true
	}
	return nil
}

// jsonStrings refuses the first string of body, name or value, that is not
// valid UTF-8 (raw bytes, or an escaped lone surrogate) or holds a NUL
// (\u0000), naming its field as the handlers do: the object names on its
// path joined by dots, without array indexes ("items.sku"). encoding/json
// would hand such a string on silently: a NUL as is, invalid UTF-8 replaced
// by U+FFFD. A body that is not JSON is left to the decoder to refuse.
func jsonStrings(body []byte) error {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) {
		return nil // the common case: nothing to look at
	}
	type frame struct {
		object    bool
		name      string // the current member's name, in an object
		expectKey bool
	}
	var stack []frame
	path := func(last string) string {
		var parts []string
		for _, f := range stack {
			if f.object && f.name != "" {
				parts = append(parts, f.name)
			}
		}
		if last != "" {
			parts = append(parts, last)
		}
		return strings.Join(parts, ".")
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].name, stack[n-1].expectKey = "", true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var start int64
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or not JSON: decode says which
		}
		end := dec.InputOffset()
		raw := body[start:end]
		start = end
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, expectKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			// raw is the separators before the token, then the literal as
			// written; separators hold no quote.
			literal := raw[bytes.IndexByte(raw, '"'):]
			isKey := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].expectKey
			if !validLiteral(literal) {
				field := path("")
				if isKey {
					field = path(strings.ToValidUTF8(strings.ReplaceAll(v, "\x00", "\uFFFD"), "\uFFFD"))
				}
				if field == "" {
					return nil // not an object: decode refuses the body
				}
				return badText(field)
			}
			if isKey {
				stack[len(stack)-1].name = v
				stack[len(stack)-1].expectKey = false
			} else {
				valueDone()
			}
		default:
			valueDone()
		}
	}
}

// validLiteral reports whether a JSON string literal, quotes and escapes as
// written, stands for valid UTF-8 without NUL: its raw bytes are UTF-8, and
// no \u escape is NUL or a surrogate half without its partner. The literal
// is known to be well-formed JSON.
func validLiteral(lit []byte) bool {
	if !utf8.Valid(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		i++
		if i >= len(lit) || lit[i] != 'u' {
			continue
		}
		r, ok := hex4(lit, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r == 0:
			return false
		case utf16.IsSurrogate(r):
			// A high half must be followed at once by an escaped low half.
			if r >= 0xDC00 || i+6 >= len(lit) || lit[i+1] != '\\' || lit[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(lit, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 reads the four hex digits of a \u escape at lit[at:].
func hex4(lit []byte, at int) (rune, bool) {
	if at+4 > len(lit) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(lit[at:at+4]), 16, 32)
	return rune(n), err == nil
}
