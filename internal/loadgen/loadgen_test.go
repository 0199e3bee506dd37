package loadgen_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/net/html"

	"github.com/ordersaga/ordersaga/internal/loadgen"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestRunAgainstTheSystem runs the generator against a whole system, as a
// user runs `ordersaga load` against `make dev`, with a mix of tokens and
// cancels, and checks what it reports against what the orders became.
func TestRunAgainstTheSystem(t *testing.T) {
	sys := system.Start(t, system.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tokens, err := loadgen.ParseTokens("tok_ok=2,tok_declined=1")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: sys.GatewayURL, AdminEmail: "root@example.com", AdminPassword: "admin-password",
		Concurrency: 10, Orders: 30, Tokens: tokens, Cancel: 0.25, Lines: loadgen.Range{Min: 1, Max: 3},
		Customers: 3, Products: 5, Timeout: 30 * time.Second, Seed: 7, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Every order was placed and reached a terminal status, the one its
	// token and its cancel call for, as the read model also says.
	var declined, cancelled int
	for _, o := range res.Orders {
		if !o.Placed() || o.Ended.IsZero() {
			t.Errorf("order %+v was not placed or did not end", o)
			continue
		}
		want := loadgen.Outcome(order.Confirmed, order.ReasonNone)
		switch {
		case o.CancelAccepted:
			want = loadgen.Outcome(order.Cancelled, order.ReasonCustomer)
			cancelled++
		case o.Token == "tok_declined":
			want = loadgen.Outcome(order.Rejected, order.ReasonPaymentDeclined)
			declined++
		}
		got := loadgen.Outcome(o.Status, o.Reason)
		if got != want {
			t.Errorf("order %s (token %s, cancel sent %v accepted %v) ended %s, want %s", o.ID, o.Token, o.CancelSent, o.CancelAccepted, got, want)
		}
		if stored := sys.Outcome(o.ID); stored != got {
			t.Errorf("order %s: the websocket said %s, the read model %s", o.ID, got, stored)
		}
	}
	if len(res.Orders) != 30 || declined == 0 || cancelled == 0 {
		t.Errorf("%d orders, %d declined, %d cancelled: the mix should give some of each", len(res.Orders), declined, cancelled)
	}

	// The summary's counts add up.
	s := loadgen.Summarize(res)
	var printed bytes.Buffer
	if err := s.Print(&printed, res.Config); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", printed.String())
	if s.Attempted != 30 || s.Placed != 30 || s.Ended != 30 || s.TimedOut != 0 || len(s.Errors) != 0 {
		t.Errorf("summary %+v", s)
	}
	sum := 0
	for _, n := range s.Outcomes {
		sum += n
	}
	if sum != s.Ended ||
		s.Outcomes[loadgen.Outcome(order.Rejected, order.ReasonPaymentDeclined)] != declined ||
		s.Outcomes[loadgen.Outcome(order.Cancelled, order.ReasonCustomer)] != cancelled ||
		s.Outcomes[loadgen.Outcome(order.Confirmed, order.ReasonNone)] != 30-declined-cancelled {
		t.Errorf("outcomes %v, want %d declined and %d cancelled of 30", s.Outcomes, declined, cancelled)
	}
	if s.PlacedPerSecond <= 0 || s.EndedPerSecond <= 0 || s.Post.P50 <= 0 || s.ToTerminal.P50 < s.Post.P50 || s.ToTerminal.P99 < s.ToTerminal.P50 {
		t.Errorf("figures %+v", s)
	}
	if !strings.Contains(progress.String(), "30 ended") {
		t.Errorf("the progress lines never said 30 ended:\n%s", progress.String())
	}

	// The report is an HTML page with the plots in it.
	path := filepath.Join(t.TempDir(), "load-report.html")
	if err := loadgen.WriteReport(path, res, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if svgs := checkHTML(t, b); svgs < 2 {
		t.Errorf("the report has %d <svg> plots, want at least 2", svgs)
	}
	svgPath := filepath.Join(t.TempDir(), "load-report.svg")
	if err := loadgen.WriteReport(svgPath, res, s); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(svgPath); err != nil || wellFormed(b) != nil {
		t.Errorf("the SVG report is not well-formed XML: %v %v", err, wellFormed(b))
	}
}

// checkHTML parses the page and checks that each <svg> in it is
// well-formed XML; it returns how many there are.
func checkHTML(t *testing.T, b []byte) int {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) {
		t.Errorf("the report does not start with <!DOCTYPE html>: %.80s", b)
	}
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse the report: %v", err)
	}
	svgs := 0
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "svg" {
			svgs++
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	s := string(b)
	for i := strings.Index(s, "<svg"); i >= 0; i = strings.Index(s, "<svg") {
		end := strings.Index(s[i:], "</svg>")
		if end < 0 {
			t.Fatal("an <svg> of the report is not closed")
		}
		if err := wellFormed([]byte(s[i : i+end+len("</svg>")])); err != nil {
			t.Errorf("an <svg> of the report is not well-formed: %v", err)
		}
		s = s[i+end:]
	}
	return svgs
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// TestCeilingRunsTheWorkflowShapeWithNoopActivities: the ceiling runs
// every order it is given through OrderWorkflow in a namespace of its own
// and reports their rate and latencies.
func TestCeilingRunsTheWorkflowShapeWithNoopActivities(t *testing.T) {
	addr := testkit.TemporalAddress(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := testkit.Dial(t, client.Options{HostPort: addr, Namespace: "default", Logger: logging.Temporal(testkit.Logger())})
	if err := loadgen.PrepareCeiling(ctx, admin); err != nil {
		t.Fatal(err)
	}
	c := testkit.Dial(t, client.Options{HostPort: addr, Namespace: loadgen.CeilingNamespace, Logger: logging.Temporal(testkit.Logger())})
	res, err := loadgen.Ceiling(ctx, c, 24, 6)
	if err != nil {
		t.Fatal(err)
	}
	if res.Orders != 24 || res.PerSecond <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Elapsed <= 0 {
		t.Fatalf("ceiling %+v, want 24 orders with a rate and latencies", res)
	}
	// Each ran the whole saga: it ended CONFIRMED.
	testkit.WaitFor(t, "24 no-op orders listed CONFIRMED", 30*time.Second, func() bool {
		n, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: loadgen.CeilingNamespace, Query: `OrderStatus = "CONFIRMED"`})
		return err == nil && n.GetCount() >= 24
	})
	t.Logf("ceiling: %.1f orders/s, p50 %s, p99 %s", res.PerSecond, res.P50, res.P99)
}

// TestSessionRunsAgainAndMetersTheStack: a session's second run places new
// orders (not replays of the first run's Idempotency-Keys), and the CPU
// meter finds the stack's processes from the gateway's port: here the test
// process that runs the services, with its PostgreSQL and Temporal server.
func TestSessionRunsAgainAndMetersTheStack(t *testing.T) {
	sys := system.Start(t, system.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := loadgen.Open(ctx, loadgen.Config{
		BaseURL: sys.GatewayURL, AdminEmail: "root@example.com", AdminPassword: "admin-password",
		Concurrency: 5, Orders: 10, Lines: loadgen.Range{Min: 1, Max: 1}, Customers: 2, Products: 2, Timeout: 30 * time.Second,
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	port, err := strconv.Atoi(sys.GatewayURL[strings.LastIndex(sys.GatewayURL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	meter, err := loadgen.NewCPUMeter(port)
	if err != nil {
		t.Fatal(err)
	}
	before, err := meter.Read()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for run := 1; run <= 2; run++ {
		res, err := s.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum := loadgen.Summarize(res)
		if sum.Outcomes[loadgen.Outcome(order.Confirmed, order.ReasonNone)] != 10 || sum.ConfirmedPerSecond <= 0 || sum.ToConfirmed.P50 <= 0 {
			t.Errorf("run %d: %+v, want 10 confirmed orders", run, sum)
		}
		for _, o := range res.Orders {
			if seen[o.ID.String()] {
				t.Errorf("run %d placed order %s again", run, o.ID)
			}
			seen[o.ID.String()] = true
		}
	}
	after, err := meter.Read()
	if err != nil {
		t.Fatal(err)
	}
	used := after.Sub(before)
	t.Logf("CPU used by 20 orders: %v", used)
	for _, group := range []string{"postgres", "temporal", filepath.Base(os.Args[0])[:min(15, len(filepath.Base(os.Args[0])))]} {
		if used[group] <= 0 {
			t.Errorf("the meter saw no CPU used by %q: %v", group, used)
		}
	}
}
