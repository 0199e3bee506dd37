// Package serve runs ordersaga's HTTP servers the one way they all run: on
// a listener their owner opened (a port of its own in production, port 0 in
// tests), with timeouts against slow clients, until the context ends, then
// drained. It also holds the one readiness probe, /readyz, that every
// service answers from the dependencies it names.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"
)

// Grace is how long a stopping server lets requests in flight finish.
const Grace = 10 * time.Second

// NewServer returns an http.Server for h with the timeouts every ordersaga
// server uses: a client that trickles its headers or body, or never reads
// its answer, holds a connection for a bounded time only. Streams that live
// longer (websockets) are hijacked and are not bound by them.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Run serves srv on ln until ctx ends, then shuts it down, letting requests
// in flight finish within Grace. It returns nil after a shutdown that ctx
// asked for, and the server's error otherwise.
func Run(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), Grace)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped // Shutdown returns once in-flight requests are done
		return nil
	}
	return err
}

// Check is one dependency that /readyz asks: a name an operator recognizes
// ("postgres:orders", "temporal", "kafka") and a call that fails when it is
// unreachable.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// CheckTimeout bounds each readiness check, so that a stalled dependency
// answers "unavailable" before the probe itself times out.
const CheckTimeout = 2 * time.Second

// Readiness is the answer of /readyz: {"status":"ready","checks":{...}},
// or "unavailable" with the failing checks named, sorted.
type Readiness struct {
	Status  string            `json:"status"`
	Failing []string          `json:"failing,omitempty"`
	Checks  map[string]string `json:"checks"`
}

// Ready runs every check at once, each bounded by CheckTimeout.
func Ready(ctx context.Context, checks []Check) Readiness {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	out := Readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Ping(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Checks[c.Name] = "unavailable"
				out.Failing = append(out.Failing, c.Name)
				return
			}
			out.Checks[c.Name] = "ok"
		}()
	}
	wg.Wait()
	if len(out.Failing) > 0 {
		sort.Strings(out.Failing)
		out.Status = "unavailable"
	}
	return out
}

// Readyz answers /readyz: 200 with Readiness when every check passes, 503
// naming the ones that fail otherwise. Orchestrators stop sending traffic
// to a service whose dependencies are gone, and resume when they return.
func Readyz(checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rd := Ready(r.Context(), checks)
		w.Header().Set("Content-Type", "application/json")
		if rd.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rd)
	}
}

// Healthz answers /healthz: the process runs and serves.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Probes adds /healthz and /readyz over checks to mux.
func Probes(mux *http.ServeMux, checks ...Check) {
	mux.HandleFunc("/healthz", Healthz)
	mux.HandleFunc("/readyz", Readyz(checks...))
}

// Profiling adds Go's profiles under /debug/pprof/ to mux. It belongs on
// a private operations listener only, and outside `ordersaga dev` only
// when DEBUG_PPROF asks: a profile shows the program's internals and costs
// CPU while it runs.
func Profiling(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
