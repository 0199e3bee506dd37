package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

// decode reads the JSON body into v. Malformed JSON is invalid_json, a
// value of the wrong type is invalid_argument naming the field, and a body
// past 1 MiB is payload_too_large.
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
