package order_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"go.temporal.io/sdk/converter"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Temporal's default limits on the UI metadata of a workflow start
// (limit.userMetadataSummarySize, limit.userMetadataDetailsSize).
const (
	temporalSummaryLimit = 400
	temporalDetailsLimit = 20000
)

// payloadSize is the size of s as the SDK sends it: a JSON payload.
func payloadSize(t *testing.T, s string) int {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(s)
	if err != nil {
		t.Fatal(err)
	}
	return len(p.GetData())
}

func bigOrder(lines int, name string) order.Input {
	in := order.Input{OrderID: "7f1a3c52-9a0e-4c1b-8d7e-2f4b6a8c0d1e", CustomerID: "0b9c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e", PaymentMethod: "tok_ok", Currency: "USD"}
	for i := range lines {
		l := order.Line{SKU: fmt.Sprintf("SKU-%02d-%s", i, strings.Repeat("X", 57)), Name: name, Quantity: 1000, UnitPriceCents: 99_999_999}
		in.Lines = append(in.Lines, l)
		in.TotalCents += l.UnitPriceCents * int64(l.Quantity)
	}
	return in
}

// TestUIMetadataIsCapped: whatever an order holds, the summary and details
// that its workflow start carries stay under Temporal's limits, so the
// start is never refused for their size.
func TestUIMetadataIsCapped(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   order.Input
	}{
		// 50 lines, names of 200 four-byte characters: 40 KB uncapped.
		{"long names", bigOrder(50, strings.Repeat("𝄞", 200))},
		// Characters that JSON escapes to six bytes each, and markdown breakers.
		{"escaped names", bigOrder(50, strings.Repeat("<&>|\n\"\\", 29))},
		{"plain names", bigOrder(50, strings.Repeat("n", 200))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			summary, details := order.Summary(tc.in), order.Details(tc.in)
			if n := payloadSize(t, summary); n > order.SummaryLimit+2 || n > temporalSummaryLimit {
				t.Errorf("summary is %d bytes encoded; cap %d, Temporal's limit %d", n, order.SummaryLimit, temporalSummaryLimit)
			}
			if n := payloadSize(t, details); n > order.DetailsLimit+2 || n > temporalDetailsLimit {
				t.Errorf("details are %d bytes encoded; cap %d, Temporal's limit %d", n, order.DetailsLimit, temporalDetailsLimit)
			}
			if !utf8.ValidString(summary) || !utf8.ValidString(details) {
				t.Error("a cut split a character")
			}
			// What an operator still sees: the order, its first lines, how
			// many are left out, and the total.
			if !strings.Contains(details, tc.in.OrderID) || !strings.Contains(details, tc.in.Lines[0].SKU) {
				t.Errorf("details lost the order id or the first line:\n%s", details)
			}
			shown := strings.Count(details, "| SKU-")
			if shown < 1 || shown > order.DetailsLines {
				t.Errorf("details show %d lines, want 1..%d", shown, order.DetailsLines)
			}
			if want := fmt.Sprintf("%d more line(s)", 50-shown); !strings.Contains(details, want) {
				t.Errorf("details do not say %q:\n%s", want, details)
			}
			if !strings.Contains(details, "**Total** "+order.Money(tc.in.TotalCents, "USD")) {
				t.Errorf("details lost the total:\n%s", details)
			}
			if !strings.HasPrefix(summary, "50 item(s), 50000 unit(s), ") {
				t.Errorf("summary = %q", summary)
			}
			// Every table row keeps its four cells: names cannot break the table.
			for _, row := range strings.Split(details, "\n") {
				if strings.HasPrefix(row, "| SKU-") && strings.Count(strings.ReplaceAll(row, `\|`, ""), "|") != 5 {
					t.Errorf("row broken by its name: %q", row)
				}
			}
		})
	}
}

// TestSmallOrderDetailsShowEverything: an ordinary order is shown whole.
func TestSmallOrderDetailsShowEverything(t *testing.T) {
	in := order.Input{OrderID: "o-1", CustomerID: "c-1", Currency: "USD", TotalCents: 2500, Lines: []order.Line{
		{SKU: "WATCH-42", Name: "Diver's watch", Quantity: 2, UnitPriceCents: 1000},
		{SKU: "STRAP-1", Name: "Strap", Quantity: 1, UnitPriceCents: 500},
	}}
	want := "**Order** o-1\n\n**Customer** c-1\n\n| sku | name | qty | unit |\n| --- | --- | --- | --- |\n" +
		"| WATCH-42 | Diver's watch | 2 | 10.00 USD |\n| STRAP-1 | Strap | 1 | 5.00 USD |\n\n**Total** 25.00 USD"
	if got := order.Details(in); got != want {
		t.Errorf("details:\n%s\nwant:\n%s", got, want)
	}
	if got := order.Summary(in); got != "2 item(s), 3 unit(s), 25.00 USD for customer c-1" {
		t.Errorf("summary = %q", got)
	}
}
