// Package order is the contract of the order saga: what callers of
// OrderWorkflow (the gateway, the starter, tests, operators' tools) and its
// activities share. It holds names, types and constants, and the
// declaration of each activity (activities.go), through which the workflow
// calls them and against which the workers' registrations are checked. It
// holds no workflow logic; the workflow itself is in package saga.
package order

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Task queues. The order worker runs the workflow and its local activities;
// the product and payment workers run the inventory and payment activities.
const (
	TaskQueueOrders  = "orders"
	TaskQueueProduct = "product"
	TaskQueuePayment = "payment"
)

// Names registered with Temporal.
const (
	WorkflowName = "OrderWorkflow"
	// QueryStatus answers the workflow's current View.
	QueryStatus = "status"
	// UpdateCancel asks the saga to cancel the order (CancelRequest → View).
	UpdateCancel = "cancel"
)

// Application error types: the stable names of business failures. Each is
// non-retryable.
const (
	ErrOutOfStock          = "OutOfStock"
	ErrPaymentDeclined     = "PaymentDeclined"
	ErrInsufficientFunds   = "InsufficientFunds"
	ErrCaptureDeclined     = "CaptureDeclined"
	ErrReservationReleased = "ReservationReleased"
	ErrPaymentVoided       = "PaymentVoided"
	ErrInvalidRequest      = "InvalidRequest"
)

// DefaultStepTimeout bounds each saga step when the input does not say.
const DefaultStepTimeout = 5 * time.Minute

// DefaultUndoTimeout bounds how long an undo (release, void) retries
// transient errors when the input does not say: long enough to outlast any
// outage, so that only an error no retry can fix ends an order FAILED.
const DefaultUndoTimeout = 24 * time.Hour

// Timeouts are the configured bounds that every starter of an order's
// workflow hands to it.
type Timeouts struct {
	// Step bounds each saga step (schedule to close); past it the order is
	// compensated and REJECTED(timeout).
	Step time.Duration
	// Undo bounds the retries of each undo.
	Undo time.Duration
}

// Search attributes that the workflow keeps current, for the Temporal UI.
var (
	SearchStatus     = temporal.NewSearchAttributeKeyKeyword("OrderStatus")
	SearchCustomerID = temporal.NewSearchAttributeKeyKeyword("CustomerId")
	SearchTotal      = temporal.NewSearchAttributeKeyInt64("OrderTotal")
)

// WorkflowID is the id of the workflow that runs orderID. One order, one id:
// starting it twice finds the first.
func WorkflowID(orderID string) string { return "order-" + orderID }

// Status is an order's status (API.md "Order states").
type Status string

// Statuses.
const (
	Pending    Status = "PENDING"
	Reserved   Status = "RESERVED"
	Authorized Status = "AUTHORIZED"
	Confirmed  Status = "CONFIRMED"
	Rejected   Status = "REJECTED"
	Cancelled  Status = "CANCELLED"
	Failed     Status = "FAILED"
)

// Statuses returns every status, in the order an order may pass them.
func Statuses() []Status {
	return []Status{Pending, Reserved, Authorized, Confirmed, Rejected, Cancelled, Failed}
}

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses(), s) }

// Terminal reports whether no transition leaves s.
func (s Status) Terminal() bool {
	switch s {
	case Confirmed, Rejected, Cancelled, Failed:
		return true
	}
	return false
}

// TerminalStatuses returns the statuses that no transition leaves, for
// queries that select orders by them (pass it as a parameter, not spelled
// in SQL).
func TerminalStatuses() []Status {
	var out []Status
	for _, s := range Statuses() {
		if s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}

// Reason says why an order was rejected, cancelled or failed.
type Reason string

// Reasons.
const (
	ReasonNone               Reason = ""
	ReasonOutOfStock         Reason = "out_of_stock"
	ReasonPaymentDeclined    Reason = "payment_declined"
	ReasonInsufficientFunds  Reason = "insufficient_funds"
	ReasonCaptureFailed      Reason = "capture_failed"
	ReasonTimeout            Reason = "timeout"
	ReasonCustomer           Reason = "customer"
	ReasonAdmin              Reason = "admin"
	ReasonCompensationFailed Reason = "compensation_failed"
	ReasonStepFailed         Reason = "step_failed"
	// ReasonOperatorRepair: `ordersaga repair` finished the compensation of
	// an order whose workflow ended without doing so.
	ReasonOperatorRepair Reason = "operator_repair"
)

// Line is one priced line of an order.
type Line struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Input starts OrderWorkflow. The order is already recorded as PENDING
// (seq 1) when the workflow starts.
type Input struct {
	OrderID       string `json:"order_id"`
	CustomerID    string `json:"customer_id"`
	Lines         []Line `json:"lines"`
	PaymentMethod string `json:"payment_method"`
	TotalCents    int64  `json:"total_cents"`
	Currency      string `json:"currency"`
	// StepTimeout bounds each step (schedule to close); zero means DefaultStepTimeout.
	StepTimeout time.Duration `json:"step_timeout,omitempty"`
	// UndoTimeout bounds the retries of each undo; zero means DefaultUndoTimeout.
	UndoTimeout time.Duration `json:"undo_timeout,omitempty"`
}

// Result is what OrderWorkflow returns: the terminal status.
type Result struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
	Reason  Reason `json:"reason,omitempty"`
	Seq     int    `json:"seq"`
}

// View is the workflow's answer to QueryStatus and UpdateCancel.
type View struct {
	Status Status `json:"status"`
	Reason Reason `json:"reason,omitempty"`
	// Seq is the seq of the last recorded transition.
	Seq int `json:"seq"`
	// CaptureIssued is set once the capture was sent: from then on the
	// order completes and cannot be cancelled.
	CaptureIssued bool `json:"capture_issued"`
	// Compensations lists the undo steps that ran, in the order they ran.
	Compensations []string `json:"compensations,omitempty"`
}

// CancelRequest is the argument of UpdateCancel.
type CancelRequest struct {
	// Reason is ReasonCustomer or ReasonAdmin.
	Reason Reason `json:"reason"`
}

// StockLine asks for quantity units of sku.
type StockLine struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// StockRequest is the argument of ReserveStock, CommitStock and ReleaseStock.
// Commit and release use only OrderID: they act on what was reserved.
type StockRequest struct {
	OrderID string      `json:"order_id"`
	Lines   []StockLine `json:"lines,omitempty"`
}

// Allocation is the part of a line held in one warehouse.
type Allocation struct {
	SKU       string `json:"sku"`
	Warehouse string `json:"warehouse"`
	Quantity  int    `json:"quantity"`
}

// Reservation is what ReserveStock holds for an order.
type Reservation struct {
	OrderID     string       `json:"order_id"`
	Allocations []Allocation `json:"allocations"`
}

// OutOfStockDetails are the details of an ErrOutOfStock error.
type OutOfStockDetails struct {
	SKU       string `json:"sku"`
	Requested int    `json:"requested"`
	Available int    `json:"available"`
}

func (d OutOfStockDetails) String() string {
	return fmt.Sprintf("SKU %s has %d available, %d requested", d.SKU, d.Available, d.Requested)
}

// PaymentRequest is the argument of the payment activities. PaymentMethod
// is a provider token, never card data.
type PaymentRequest struct {
	OrderID       string `json:"order_id"`
	PaymentMethod string `json:"payment_method,omitempty"`
	AmountCents   int64  `json:"amount_cents"`
	Currency      string `json:"currency"`
}

// Authorization is what AuthorizePayment returns.
type Authorization struct {
	OrderID         string `json:"order_id"`
	AuthorizationID string `json:"authorization_id"`
}

// StatusRecord is the argument of RecordStatus: one transition of one order.
type StatusRecord struct {
	OrderID    string    `json:"order_id"`
	CustomerID string    `json:"customer_id"`
	Seq        int       `json:"seq"`
	Status     Status    `json:"status"`
	Reason     Reason    `json:"reason,omitempty"`
	TotalCents int64     `json:"total_cents"`
	OccurredAt time.Time `json:"occurred_at"`
}
