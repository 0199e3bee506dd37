package workers

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestEveryDeclaredActivityIsRegisteredOnceAsDeclared: each activity that
// package order declares is registered by exactly one worker, as
// checkRegistrations says.
func TestEveryDeclaredActivityIsRegisteredOnceAsDeclared(t *testing.T) {
	for _, p := range checkRegistrations(order.Activities(), registrations()) {
		t.Error(p)
	}
}

// checkRegistrations returns what is wrong with regs, given the declared
// activities: each declared activity must be a method of exactly one
// worker's registered struct, that worker must poll the declared task
// queue, and the method must take and return the declared types. A
// registered struct must have no exported method that is not declared,
// since the SDK registers every exported method as an activity. A local
// activity must be declared on the workflow's task queue, whose worker
// runs it.
func checkRegistrations(decls []order.Declaration, regs []registration) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	declared := map[string]bool{}
	for _, d := range decls {
		if declared[d.Name] {
			report("%s is declared twice", d.Name)
		}
		declared[d.Name] = true
		var by []string
		for _, r := range regs {
			m := reflect.ValueOf(r.activities).MethodByName(d.Name)
			if !m.IsValid() {
				continue
			}
			by = append(by, r.worker)
			if r.taskQueue != d.TaskQueue {
				report("%s is declared on task queue %q but the %s worker registers it on %q", d.Name, d.TaskQueue, r.worker, r.taskQueue)
			}
			if got, want := m.Type(), methodType(d); got != want {
				report("%s is declared as %v but the %s worker registers %T.%s as %v", d.Name, want, r.worker, r.activities, d.Name, got)
			}
		}
		if len(by) != 1 {
			report("%s is registered by %d workers %v, want exactly one", d.Name, len(by), by)
		}
		if d.Local && d.TaskQueue != order.StartOptions(order.Input{}).TaskQueue {
			report("local activity %s is declared on %q, not on the workflow's task queue", d.Name, d.TaskQueue)
		}
	}
	for _, r := range regs {
		typ := reflect.TypeOf(r.activities)
		for i := range typ.NumMethod() {
			if name := typ.Method(i).Name; !declared[name] {
				report("the %s worker registers %v, whose exported method %s is no declared activity (the SDK would register it as one)", r.worker, typ, name)
			}
		}
	}
	return problems
}

// methodType is the type of d's method with its receiver bound:
// func(context.Context, Arg) (Result, error), or func(context.Context, Arg)
// error when d has no result.
func methodType(d order.Declaration) reflect.Type {
	out := []reflect.Type{reflect.TypeFor[error]()}
	if d.Result != nil {
		out = []reflect.Type{d.Result, reflect.TypeFor[error]()}
	}
	return reflect.FuncOf([]reflect.Type{reflect.TypeFor[context.Context](), d.Arg}, out, false)
}

// TestTheRegistrationCheckNoticesMistakes: checkRegistrations notices a
// renamed method, a changed type, a struct registered on two workers, a
// stray exported method, a wrong task queue and a missing worker.
func TestTheRegistrationCheckNoticesMistakes(t *testing.T) {
	byWorker := map[string]registration{}
	for _, r := range registrations() {
		byWorker[r.worker] = r
	}
	orderReg, product, payment := byWorker["order"], byWorker["product"], byWorker["payment"]
	if len(byWorker) != 3 || orderReg.activities == nil || product.activities == nil || payment.activities == nil {
		t.Fatalf("registrations: %+v, want the order, product and payment workers", byWorker)
	}
	with := func(r registration, acts any) registration { r.activities = acts; return r }
	for _, c := range []struct {
		name string
		regs []registration
		want string
	}{
		{"method renamed", []registration{with(orderReg, recordRenamed{}), product, payment},
			"RecordStatus is registered by 0 workers"},
		{"argument type changed", []registration{orderReg, with(product, reserveTakesPayment{}), payment},
			"ReserveStock is declared as func(context.Context, order.StockRequest) (order.Reservation, error)"},
		{"result type changed", []registration{orderReg, with(product, commitReturnsReservation{}), payment},
			"CommitStock is declared as func(context.Context, order.StockRequest) error"},
		{"struct on two workers", []registration{orderReg, product, payment, {worker: "extra", taskQueue: order.TaskQueuePayment, activities: payment.activities}},
			"AuthorizePayment is registered by 2 workers [payment extra]"},
		{"stray method", []registration{orderReg, with(product, inventoryWithStray{}), payment},
			"exported method Stray is no declared activity"},
		{"wrong task queue", []registration{orderReg, product, {worker: "payment", taskQueue: order.TaskQueueProduct, activities: payment.activities}},
			`VoidPayment is declared on task queue "payment" but the payment worker registers it on "product"`},
		{"worker missing", []registration{orderReg, product},
			"CapturePayment is registered by 0 workers"},
	} {
		problems := checkRegistrations(order.Activities(), c.regs)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: want a problem containing %q, got %q", c.name, c.want, problems)
		}
	}
}

// Altered activities structs, each with one mistake.
type (
	recordRenamed            struct{}
	reserveTakesPayment      struct{ *inventory.Activities }
	commitReturnsReservation struct{ *inventory.Activities }
	inventoryWithStray       struct{ *inventory.Activities }
)

func (recordRenamed) Record(context.Context, order.StatusRecord) error { return nil }

func (reserveTakesPayment) ReserveStock(context.Context, order.PaymentRequest) (order.Reservation, error) {
	return order.Reservation{}, nil
}

func (commitReturnsReservation) CommitStock(context.Context, order.StockRequest) (order.Reservation, error) {
	return order.Reservation{}, nil
}

func (inventoryWithStray) Stray(context.Context, order.StockRequest) error { return nil }
