package order

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// EventType is the type of every OrderEvent.
const EventType = "order.status_changed"

// OrderEvent is one status transition of one order (API.md "OrderEvent"):
// what the outbox stores, the relay publishes to Kafka, the websocket hub
// pushes to clients and GET /orders/{id}/events lists. Its JSON is the
// wire format; consumers import this type rather than a database package.
type OrderEvent struct {
	// EventID is "<order_id>:<seq>": the same transition always has the
	// same id, so a consumer of at-least-once delivery deduplicates by it.
	EventID    string    `json:"event_id"`
	Type       string    `json:"type"`
	OrderID    uuid.UUID `json:"order_id"`
	CustomerID uuid.UUID `json:"customer_id"`
	// Seq numbers an order's transitions from 1 (PENDING), without gaps.
	Seq        int       `json:"seq"`
	Status     Status    `json:"status"`
	Reason     Reason    `json:"reason"`
	TotalCents int64     `json:"total_cents"`
	OccurredAt time.Time `json:"occurred_at"`
}

// Complete returns e with its derived fields filled: its type, its
// event_id and its time in UTC. Whoever builds an event from stored
// columns completes it before it leaves the process.
func (e OrderEvent) Complete() OrderEvent {
	e.OccurredAt = e.OccurredAt.UTC()
	e.Type = EventType
	e.EventID = fmt.Sprintf("%s:%d", e.OrderID, e.Seq)
	return e
}
