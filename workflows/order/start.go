package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// StartOptions are the options every starter of an order's workflow uses:
// the id that makes the start idempotent, and the summary that the Temporal
// UI shows for the order.
func StartOptions(in Input) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:        WorkflowID(in.OrderID),
		TaskQueue: TaskQueueOrders,
		// An order runs once: a finished workflow is never started again.
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            Summary(in),
		StaticDetails:            Details(in),
		TypedSearchAttributes:    searchAttributes(in, Pending),
	}
}

// Start starts the workflow of in unless it exists already, running or not.
// It is safe to call any number of times for one order.
func Start(ctx context.Context, c client.Client, in Input) error {
	_, err := c.ExecuteWorkflow(ctx, StartOptions(in), WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start workflow %s: %w", WorkflowID(in.OrderID), err)
	}
	return nil
}

// Temporal refuses a workflow start whose UI metadata is too large: the
// server's dynamic config limit.userMetadataSummarySize (default 400 bytes)
// and limit.userMetadataDetailsSize (default 20,000 bytes), measured on the
// encoded payload, where JSON escapes count (Go's encoder writes "<" as
// "\u003c", six bytes). A refused start would leave the order unstarted
// for good, so Summary and Details are capped well under those defaults,
// measured the same way, whatever the lines hold: 50 lines with names of
// 200 four-byte characters would need 40 KB.
const (
	// SummaryLimit is the most bytes that Summary takes, JSON-encoded.
	SummaryLimit = 200
	// DetailsLimit is the most bytes that Details takes, JSON-encoded.
	DetailsLimit = 8000
	// DetailsLines is the most lines Details lists; the others are counted.
	DetailsLines = 20
	// DetailsNameRunes is the most characters of a line's name Details shows.
	DetailsNameRunes = 60
)

// Summary is the one line the Temporal UI shows for an order, at most
// SummaryLimit bytes once encoded.
func Summary(in Input) string {
	units := 0
	for _, l := range in.Lines {
		units += l.Quantity
	}
	return capEncoded(fmt.Sprintf("%d item(s), %d unit(s), %s for customer %s",
		len(in.Lines), units, Money(in.TotalCents, in.Currency), in.CustomerID), SummaryLimit)
}

// Details lists an order's lines for the Temporal UI (markdown), at most
// DetailsLines of them with names cut to DetailsNameRunes characters, and
// at most DetailsLimit bytes once encoded; the lines left out are counted.
// The whole order is in the workflow's input and in the read model.
func Details(in Input) string {
	head := fmt.Sprintf("**Order** %s\n\n**Customer** %s\n\n| sku | name | qty | unit |\n| --- | --- | --- | --- |\n",
		cell(in.OrderID, 40), cell(in.CustomerID, 40))
	total := "\n**Total** " + cell(Money(in.TotalCents, in.Currency), 40)
	more := func(n int) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("| … | %d more line(s) | | |\n", n)
	}
	budget := DetailsLimit - encodedLen(head) - encodedLen(total) - encodedLen(more(len(in.Lines)))
	var rows strings.Builder
	shown := 0
	for _, l := range in.Lines {
		row := fmt.Sprintf("| %s | %s | %d | %s |\n", cell(l.SKU, 64), cell(l.Name, DetailsNameRunes), l.Quantity, cell(Money(l.UnitPriceCents, in.Currency), 40))
		n := encodedLen(row)
		if shown == DetailsLines || n > budget {
			break
		}
		budget -= n
		rows.WriteString(row)
		shown++
	}
	return head + rows.String() + more(len(in.Lines)-shown) + total
}

// cell makes s safe in a markdown table cell of at most maxRunes
// characters: control characters become spaces, "|" is escaped, and a cut
// is marked with "…".
func cell(s string, maxRunes int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxRunes {
			b.WriteString("…")
			break
		}
		switch {
		case r == '|':
			b.WriteString("\\|")
		case unicode.IsControl(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r) // invalid UTF-8 arrives here as U+FFFD
		}
		n++
	}
	return b.String()
}

// capEncoded cuts s so that it takes at most limit bytes JSON-encoded,
// marking a cut with "…".
func capEncoded(s string, limit int) string {
	if encodedLen(s) <= limit {
		return s
	}
	runes := []rune(s)
	for len(runes) > 0 && encodedLen(string(runes)+"…") > limit {
		runes = runes[:len(runes)-1]
	}
	return string(runes) + "…"
}

// encodedLen is the length of s in a JSON payload, without the quotes.
func encodedLen(s string) int {
	b, _ := json.Marshal(s) // a string always encodes
	return len(b) - 2
}

// Money formats minor units, e.g. 12900 USD → "129.00 USD".
func Money(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// searchAttributes are an order's search attributes in status s.
func searchAttributes(in Input, s Status) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchStatus.ValueSet(string(s)),
		SearchCustomerID.ValueSet(in.CustomerID),
		SearchTotal.ValueSet(in.TotalCents),
	)
}
