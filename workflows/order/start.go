package order

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// Summary is the one line the Temporal UI shows for an order.
func Summary(in Input) string {
	units := 0
	for _, l := range in.Lines {
		units += l.Quantity
	}
	return fmt.Sprintf("%d item(s), %d unit(s), %s for customer %s", len(in.Lines), units, Money(in.TotalCents, in.Currency), in.CustomerID)
}

// Details lists an order's lines for the Temporal UI (markdown).
func Details(in Input) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Order** %s\n\n**Customer** %s\n\n| sku | name | qty | unit |\n| --- | --- | --- | --- |\n", in.OrderID, in.CustomerID)
	for _, l := range in.Lines {
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", l.SKU, l.Name, l.Quantity, Money(l.UnitPriceCents, in.Currency))
	}
	fmt.Fprintf(&b, "\n**Total** %s", Money(in.TotalCents, in.Currency))
	return b.String()
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
