package faultrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// API is a client of the REST gateway (API.md) that behaves as a careful
// shopper's client does: every attempt has a deadline, and Call retries
// what API.md says is safe to retry, with backoff, until a definite answer
// or its bound.
type API struct {
	base string
	http *http.Client
	// retryFor bounds how long Call keeps retrying one request.
	retryFor time.Duration
	now      func() time.Time
}

// NewAPI returns a client of the gateway at base (http://host:port).
func NewAPI(base string, retryFor time.Duration) *API {
	return &API{
		base: base + "/api/v1",
		// A stalled server must not stall the client: give up on the
		// attempt and retry it, which is what the Idempotency-Key is for.
		http:     &http.Client{Timeout: 15 * time.Second},
		retryFor: retryFor,
		now:      time.Now,
	}
}

// Request is one API call.
type Request struct {
	Method, Path, Token, IdempotencyKey string
	Body                                any
}

// Once makes one attempt and decodes the answer into out when it is a 2xx.
func (a *API) Once(ctx context.Context, r Request, out any) Answer {
	ans := Answer{At: a.now()}
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			ans.Err = err.Error()
			return ans
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, a.base+r.Path, body)
	if err != nil {
		ans.Err = err.Error()
		return ans
	}
	req.Header.Set("Content-Type", "application/json")
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		ans.Err = err.Error()
		return ans
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		// The answer was cut off: as good as none.
		ans.Err = "read answer: " + err.Error()
		return ans
	}
	ans.Status = resp.StatusCode
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		ans.Code = e.Error.Code
		if resp.StatusCode == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				ans.Err = "retry after " + strconv.Itoa(s) + "s"
			}
		}
		return ans
	}
	var id struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &id)
	ans.OrderID = id.ID
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			ans.Err = "decode answer: " + err.Error()
		}
	}
	return ans
}

// Call retries r (no answer, 5xx, 429) with the same key until a definite
// answer, ctx's end or the client's bound, and returns every answer.
func (a *API) Call(ctx context.Context, r Request, out any) []Answer {
	var answers []Answer
	deadline := a.now().Add(a.retryFor)
	delay := 250 * time.Millisecond
	for {
		ans := a.Once(ctx, r, out)
		answers = append(answers, ans)
		if ans.Definite() || ctx.Err() != nil || a.now().After(deadline) {
			return answers
		}
		wait := delay/2 + rand.N(delay/2+1) // jitter, so retries do not march in step
		if ans.Status == http.StatusTooManyRequests {
			wait = max(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return answers
		case <-time.After(wait):
		}
		delay = min(delay*2, 4*time.Second)
	}
}

// MustCall is Call for the run's setup, where anything but the expected
// status is an error.
func (a *API) MustCall(ctx context.Context, r Request, want int, out any) error {
	answers := a.Call(ctx, r, out)
	last := answers[len(answers)-1]
	if last.Status != want {
		return fmt.Errorf("%s %s: want %d, got %s", r.Method, r.Path, want, describe(last))
	}
	return nil
}
