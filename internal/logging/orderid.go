package logging

import (
	"context"
	"log/slog"
	"strings"
)

// orderIDHandler adds order_id to every SDK line about an order workflow:
// the SDK names the workflow ("WorkflowID": "order-<id>"), and the project
// promises an order_id field on every line about an order.
type orderIDHandler struct {
	slog.Handler
	has bool
}

const orderWorkflowPrefix = "order-"

func orderIDOf(a slog.Attr) (string, bool) {
	if a.Key != "WorkflowID" {
		return "", false
	}
	v := a.Value.String()
	if !strings.HasPrefix(v, orderWorkflowPrefix) {
		return "", false
	}
	return strings.TrimPrefix(v, orderWorkflowPrefix), true
}

func (h orderIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.has
	extra := attrs
	for _, a := range attrs {
		if a.Key == "order_id" {
			has = true
		}
	}
	if !has {
		for _, a := range attrs {
			if id, ok := orderIDOf(a); ok {
				extra = append(append([]slog.Attr(nil), attrs...), slog.String("order_id", id))
				has = true
				break
			}
		}
	}
	return orderIDHandler{Handler: h.Handler.WithAttrs(extra), has: has}
}

func (h orderIDHandler) WithGroup(name string) slog.Handler {
	return orderIDHandler{Handler: h.Handler.WithGroup(name), has: h.has}
}

func (h orderIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.has {
		var id string
		found := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "order_id" {
				found, id = true, ""
				return false
			}
			if v, ok := orderIDOf(a); ok {
				id = v
			}
			return true
		})
		if !found && id != "" {
			r.AddAttrs(slog.String("order_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}
