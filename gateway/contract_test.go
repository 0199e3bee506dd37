package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
)

// contract checks exchanges with the gateway against openapi.json, so that
// a handler and the document cannot drift apart without a test failing.
// One validator serves every test; the mutex is there because the tests
// call it from several goroutines and the library does not promise that
// it may be.
var contract struct {
	once sync.Once
	mu   sync.Mutex
	v    validator.Validator
	err  error
}

func contractValidator() (validator.Validator, error) {
	contract.once.Do(func() {
		spec, err := os.ReadFile("openapi.json")
		if err != nil {
			contract.err = err
			return
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			contract.err = fmt.Errorf("parse openapi.json: %w", err)
			return
		}
		// Format assertions on: uuid, date-time and the like are part of
		// the contract, not decoration.
		v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
		if len(errs) > 0 {
			contract.err = fmt.Errorf("openapi.json: %v", errs)
			return
		}
		contract.v = v
	})
	return contract.v, contract.err
}

// exchange is one request the tests sent and what the gateway answered.
type exchange struct {
	method, url string
	reqHeader   http.Header
	reqBody     []byte
	status      int
	respHeader  http.Header
	respBody    []byte
}

// checkContract reports on t how one exchange with the gateway departs
// from openapi.json (see contractMismatches). Every helper that sends
// requests in these tests calls it with what it sent and what came back.
func checkContract(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	for _, m := range contractMismatches(exchange{method: req.Method, url: req.URL.String(), reqHeader: req.Header, reqBody: reqBody,
		status: status, respHeader: header, respBody: body}) {
		t.Error(m)
	}
}

// contractMismatches returns how the exchange departs from openapi.json,
// one line each; none when it holds. The response is always checked. The
// request is checked only when the gateway accepted it (2xx): a request
// the server took must be one the document allows, while the tests send
// many requests that are wrong on purpose, and those must be refused by
// the server, which the tests check themselves.
func contractMismatches(x exchange) []string {
	v, err := contractValidator()
	if err != nil {
		return []string{"openapi.json cannot be loaded: " + err.Error()}
	}
	req, err := http.NewRequest(x.method, x.url, bytes.NewReader(x.reqBody))
	if err != nil {
		return []string{err.Error()}
	}
	req.Header = x.reqHeader.Clone()
	resp := &http.Response{StatusCode: x.status, Header: x.respHeader, Body: io.NopCloser(bytes.NewReader(x.respBody)), Request: req}

	contract.mu.Lock()
	_, respErrs := v.ValidateHttpResponse(req, resp)
	routeKnown := true
	for _, e := range respErrs {
		routeKnown = routeKnown && !e.IsPathMissingError() && !e.IsOperationMissingError()
	}
	var reqErrs []*valerrors.ValidationError
	if x.status >= 200 && x.status < 300 && routeKnown {
		req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
		_, reqErrs = v.ValidateHttpRequestSync(req)
	}
	contract.mu.Unlock()

	op := x.method + " " + req.URL.Path
	var out []string
	for _, e := range respErrs {
		if e.IsPathMissingError() || e.IsOperationMissingError() {
			// The gateway answers routes it does not serve with 404
			// not_found in the error shape: that is the contract too.
			if x.status == http.StatusNotFound && errorCodeOf(x.respBody) == "not_found" {
				continue
			}
			out = append(out, fmt.Sprintf("openapi.json: %s → %d: the route is not in openapi.json (%s)", op, x.status, e.Message))
			continue
		}
		out = append(out, describe(op, x.status, "response", e)+"; body: "+clip(x.respBody))
	}
	for _, e := range reqErrs {
		m := describe(op, x.status, "request the server accepted", e)
		if len(x.reqBody) > 0 {
			m += "; request body: " + clip(x.reqBody)
		}
		out = append(out, m)
	}
	return out
}

// describe says which operation, status and part mismatched, and how.
func describe(op string, status int, part string, e *valerrors.ValidationError) string {
	var b strings.Builder
	if status != 0 {
		op = fmt.Sprintf("%s → %d", op, status)
	}
	fmt.Fprintf(&b, "openapi.json: %s: %s: %s", op, part, e.Message)
	if e.Reason != "" && e.Reason != e.Message && len(e.SchemaValidationErrors) == 0 {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	for _, f := range e.SchemaValidationErrors {
		where := f.FieldPath
		if where == "" {
			where = "/" + strings.Join(f.InstancePath, "/")
		}
		fmt.Fprintf(&b, "; at %s: %s", where, f.Reason)
		if f.KeywordLocation != "" {
			fmt.Fprintf(&b, " [schema %s]", f.KeywordLocation)
		}
	}
	return b.String()
}

func errorCodeOf(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

func clip(b []byte) string {
	const max = 400
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// requestRefusals returns why openapi.json refuses the request, one line
// each; none when the document allows it.
func requestRefusals(method, url string, header http.Header, body []byte) []string {
	v, err := contractValidator()
	if err != nil {
		return []string{"openapi.json cannot be loaded: " + err.Error()}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return []string{err.Error()}
	}
	req.Header = header.Clone()
	contract.mu.Lock()
	_, errs := v.ValidateHttpRequestSync(req)
	contract.mu.Unlock()
	var out []string
	for _, e := range errs {
		out = append(out, describe(method+" "+req.URL.Path, 0, "request", e))
	}
	return out
}
