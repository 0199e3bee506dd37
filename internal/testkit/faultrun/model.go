package faultrun

import (
	"time"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Invariant is one column of the result table: a property of DESIGN.md
// that the run checks.
type Invariant int

// The invariants, in the table's column order.
const (
	// InvAccepted: every accepted order exists and is terminal (never
	// FAILED here: no fault of this run justifies one), and its workflow
	// completed: it did not fail, time out or get terminated.
	InvAccepted Invariant = iota
	// InvStock: no stock row ever had reserved > on_hand or on_hand < 0,
	// the ledger adds up to every row, and no terminal order holds stock.
	InvStock
	// InvMoney: a payment is captured if and only if its order is
	// CONFIRMED, no hold outlives its order, nothing is captured twice;
	// in payments.payments and at the provider (paysim).
	InvMoney
	// InvEvents: each order's events are seq 1..n, the last one its
	// status; each is on Kafka and reached the websocket client in seq
	// order, once after deduplication by event_id.
	InvEvents
	// InvIdempotency: one order per Idempotency-Key.
	InvIdempotency
	// InvCancel: a cancel answered 200 ends the order CANCELLED.
	InvCancel
	// InvHTTP: the API kept its contract: every request got a definite
	// answer in time, an outage was 503 (never 500), and no answer was one
	// that a correct request cannot get.
	InvHTTP
	// InvProcesses: no service process exited by itself.
	InvProcesses
	numInvariants
)

var invariantNames = [numInvariants]string{"accepted", "stock", "money", "events", "idempotency", "cancel", "http", "processes"}

func (i Invariant) String() string { return invariantNames[i] }

// WholeRun is the window of a violation that belongs to no order: it shows
// only in the table's whole-run row.
const WholeRun = -1

// Violation is one broken invariant.
type Violation struct {
	Invariant Invariant
	// Window is the fault window the order was placed in, or WholeRun.
	Window int
	// OrderID names the order, when the violation is about one.
	OrderID string
	Detail  string
}

// Facts is everything the check judges: what the careful client was told,
// what the observers saw, what the processes did, and the final state.
type Facts struct {
	Placements []Placement
	Exits      []Exit
	Kafka      []KafkaRecord
	WS         []WSEntry
	State      State
}

// Placement is one order the load generator placed: one Idempotency-Key
// and every answer it got for it.
type Placement struct {
	Key        string
	CustomerID string
	// Window is the fault window the first attempt was made in.
	Window       int
	FirstAttempt time.Time
	Answers      []Answer
	// OrderID is the order the first 2xx answer named; empty without one.
	OrderID string
	Cancel  *Cancel
}

// Cancel is the cancellation the load generator sent for a placement.
type Cancel struct {
	// Delay is how long after the 202 it was sent.
	Delay   time.Duration
	Answers []Answer
}

// Answer is what one HTTP attempt got.
type Answer struct {
	At time.Time
	// Status is the HTTP status, or 0 when no answer came (connection
	// refused or reset, timeout).
	Status int
	// Code is the error body's code, if any.
	Code    string
	OrderID string
	// Err says why no answer came.
	Err string
}

// Definite reports whether the answer ends the retries: anything but no
// answer, a 5xx or a 429.
func (a Answer) Definite() bool {
	return a.Status != 0 && a.Status < 500 && a.Status != 429
}

// Exit is a service process that exited without the run killing it.
type Exit struct {
	Service string
	At      time.Time
	Window  int
	Err     string
}

// KafkaRecord is one record of topic order-events, in the order the
// consumer read it.
type KafkaRecord struct {
	Partition int32
	Offset    int64
	Key       string
	Event     Event
}

// WSEntry is one line of the websocket client's log: a frame it got, or a
// subscription it sent (Sent), on connection Conn.
type WSEntry struct {
	Conn int
	Sent bool
	// For a subscription sent: the order and after_seq.
	OrderID  string
	AfterSeq int
	// For a frame received.
	Event Event
}

// Event is an order event (API.md OrderEvent), as stored, on Kafka or on
// the websocket.
type Event struct {
	EventID string `json:"event_id"`
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
}

// State is the system's final state: the databases and Temporal.
type State struct {
	Orders map[string]Order
	// Events are each order's orders.order_events rows, by seq.
	Events map[string][]Event
	Stock  []StockRow
	// Movements is catalog.stock_movements by id.
	Movements []Movement
	// Reservations is catalog.reservations: order id → status.
	Reservations map[string]string
	Payments     map[string]Payment
	// Holds is paysim.holds by idempotency key (the order id);
	// HoldsUnreadable says why the provider's ledger could not be read.
	Holds           map[string]Hold
	HoldsUnreadable string
	// MoneyMoves counts, per key, the paysim.operations captures that
	// moved money (amount > 0).
	MoneyMoves      map[string]int
	IdempotencyKeys []KeyRow
	// Workflows are the order workflows by order id;
	// WorkflowsUnreadable says why Temporal could not be asked.
	Workflows           map[string]Workflow
	WorkflowsUnreadable string
}

// Order is an orders.orders row with its lines.
type Order struct {
	ID         string
	CustomerID string
	Status     string
	Reason     string
	TotalCents int64
	LastSeq    int
	// Lines are quantities by sku.
	Lines map[string]int
}

// StockRow is a catalog.stock row.
type StockRow struct {
	SKU, Warehouse   string
	OnHand, Reserved int
}

// Movement is a catalog.stock_movements row.
type Movement struct {
	ID                         int64
	SKU, Warehouse             string
	OnHandDelta, ReservedDelta int
	Kind                       string
	OrderID                    string
}

// Payment is a payments.payments row.
type Payment struct {
	Status      string
	AmountCents int64
}

// Hold is a paysim.holds row.
type Hold struct {
	State         string
	AmountCents   int64
	CapturedCents int64
	Captures      int
}

// KeyRow is an orders.idempotency_keys row.
type KeyRow struct {
	CustomerID, Key, OrderID string
}

// Workflow is what Temporal says of an order's workflow.
type Workflow struct {
	// Status is the execution status: Running, Completed, Failed,
	// Terminated, TimedOut, Canceled, ContinuedAsNew.
	Status string
	// Failure is the failure message of a failed workflow, when known.
	Failure string
	// Runs counts the executions with the order's workflow id: an order
	// runs once, so more than one means it was started again.
	Runs int
	// TaskFailures are the workflow tasks that failed in the workflow's
	// code (a panic, or a history its code no longer replays): each is a
	// defect even when the workflow completes in the end, since the order
	// stood still while Temporal retried the task.
	TaskFailures []string
}

// terminal reports whether no transition leaves status.
func terminal(status string) bool { return order.Status(status).Terminal() }
