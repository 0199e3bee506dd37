package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestReadyzNamesWhatFails: 200 while every dependency answers, 503 naming
// the ones that do not, sorted, and a stalled one answers within the bound.
func TestReadyzNamesWhatFails(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	stalled := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name    string
		checks  []Check
		status  int
		failing []string
	}{
		{"all up", []Check{{"postgres", ok}, {"temporal", ok}}, 200, nil},
		{"two down", []Check{{"temporal", down}, {"postgres", ok}, {"kafka", stalled}}, 503, []string{"kafka", "temporal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			rec := httptest.NewRecorder()
			Readyz(tc.checks...)(rec, httptest.NewRequest("GET", "/readyz", nil))
			var rd Readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || len(rd.Failing) != len(tc.failing) || len(rd.Checks) != len(tc.checks) {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			for i, f := range tc.failing {
				if rd.Failing[i] != f || rd.Checks[f] != "unavailable" {
					t.Errorf("failing %v, checks %v; want %v", rd.Failing, rd.Checks, tc.failing)
				}
			}
			if took := time.Since(began); took > CheckTimeout+time.Second {
				t.Errorf("took %s; a stalled check must not hold the probe", took)
			}
		})
	}
}

// TestRunDrainsARequestInFlight: when its context ends, Run stops taking
// connections but lets a request in flight finish, and returns nil.
func TestRunDrainsARequestInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inside := make(chan struct{})
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(inside)
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	}))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, srv, ln) }()
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-inside
	cancel()
	if code := <-got; code != 200 {
		t.Errorf("the request in flight got %d, want 200", code)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v, want nil after its context ended", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Error("the server still answers after Run returned")
	}
}
