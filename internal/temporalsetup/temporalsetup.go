// Package temporalsetup prepares a Temporal namespace for ordersaga: it
// registers the search attributes the order workflow keeps current, so
// operators can filter orders in the Temporal UI.
package temporalsetup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SearchAttributes are the custom search attributes of an order workflow.
var SearchAttributes = map[string]enums.IndexedValueType{
	"OrderStatus": enums.INDEXED_VALUE_TYPE_KEYWORD,
	"CustomerId":  enums.INDEXED_VALUE_TYPE_KEYWORD,
	"OrderTotal":  enums.INDEXED_VALUE_TYPE_INT,
}

// EnsureNamespace registers namespace if the server does not know it yet.
func EnsureNamespace(ctx context.Context, c client.Client, namespace string) error {
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err == nil {
		return nil
	}
	if _, ok := err.(*serviceerror.NamespaceNotFound); !ok {
		return fmt.Errorf("describe namespace %s: %w", namespace, err)
	}
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
	})
	if _, ok := err.(*serviceerror.NamespaceAlreadyExists); err != nil && !ok {
		return fmt.Errorf("register namespace %s: %w", namespace, err)
	}
	return nil
}

// EnsureSearchAttributes adds the order workflow's search attributes to
// namespace where they are missing. Running it again changes nothing; an
// attribute that exists with another type is an error an operator must fix.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enums.IndexedValueType{}
	for _, name := range sortedNames() {
		want := SearchAttributes[name]
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = want
		case got != want:
			return fmt.Errorf("search attribute %s exists in %s as %s, ordersaga needs %s", name, namespace, got, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if _, ok := err.(*serviceerror.AlreadyExists); err != nil && !ok {
		return fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	return nil
}

func sortedNames() []string {
	names := make([]string, 0, len(SearchAttributes))
	for n := range SearchAttributes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
