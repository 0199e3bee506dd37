package order

import (
	"reflect"

	"go.temporal.io/sdk/workflow"
)

// The saga's activities, each declared once: the name its worker registers
// it under (the method name on the activities struct, since workers register
// whole structs), the task queue that worker polls, and its argument and
// result types. The saga calls them through these declarations, so it
// imports no activity code and the compiler checks what it passes and gets.
// The names and types are in recorded histories: changing one breaks the
// replay of running orders.
var (
	// ReserveStock holds the order's lines in the warehouses (product worker).
	ReserveStock = Activity[StockRequest, Reservation]{Name: "ReserveStock", TaskQueue: TaskQueueProduct}
	// CommitStock turns what ReserveStock held into a sale (product worker).
	CommitStock = Activity[StockRequest, None]{Name: "CommitStock", TaskQueue: TaskQueueProduct}
	// ReleaseStock undoes ReserveStock (product worker).
	ReleaseStock = Activity[StockRequest, None]{Name: "ReleaseStock", TaskQueue: TaskQueueProduct}
	// AuthorizePayment places a hold on the shopper's money (payment worker).
	AuthorizePayment = Activity[PaymentRequest, Authorization]{Name: "AuthorizePayment", TaskQueue: TaskQueuePayment}
	// CapturePayment takes the authorized money (payment worker).
	CapturePayment = Activity[PaymentRequest, None]{Name: "CapturePayment", TaskQueue: TaskQueuePayment}
	// VoidPayment undoes AuthorizePayment (payment worker).
	VoidPayment = Activity[PaymentRequest, None]{Name: "VoidPayment", TaskQueue: TaskQueuePayment}
	// RecordStatus records one transition of an order, in the read model and
	// the outbox. It is a local activity of the order worker, which runs the
	// workflow: no task queue round trip per transition.
	RecordStatus = LocalActivity[StatusRecord, None]{Name: "RecordStatus", TaskQueue: TaskQueueOrders}
)

// Activities lists every activity the saga calls, for the test that checks
// that exactly one worker registers each of them as declared.
func Activities() []Declaration {
	return []Declaration{
		ReserveStock.Declaration(),
		CommitStock.Declaration(),
		ReleaseStock.Declaration(),
		AuthorizePayment.Declaration(),
		CapturePayment.Declaration(),
		VoidPayment.Declaration(),
		RecordStatus.Declaration(),
	}
}

// None is the result type of an activity that returns nothing but an
// error: its method is func(context.Context, In) error.
type None struct{}

// Activity declares an activity that runs on its worker's task queue, with
// argument In and result Out (None when it returns only an error).
type Activity[In, Out any] struct {
	// Name is the activity type's name: the registered method's name.
	Name string
	// TaskQueue is the queue of the worker that registers it.
	TaskQueue string
}

// Execute runs the activity from workflow code and waits for its result.
// It schedules it on the declared task queue, with the other options
// (timeouts, retry policy, summary) that ctx carries from
// workflow.WithActivityOptions.
func (a Activity[In, Out]) Execute(ctx workflow.Context, in In) (Out, error) {
	ctx = workflow.WithTaskQueue(ctx, a.TaskQueue)
	return get[Out](ctx, workflow.ExecuteActivity(ctx, a.Name, in))
}

// Declaration returns a's name, queue and types, for the registration test.
func (a Activity[In, Out]) Declaration() Declaration {
	return declaration[In, Out](a.Name, a.TaskQueue, false)
}

// LocalActivity declares a local activity: it runs in the worker that runs
// the workflow, so TaskQueue is the workflow's task queue, and that worker
// registers it.
type LocalActivity[In, Out any] struct {
	// Name is the activity type's name: the registered method's name.
	Name string
	// TaskQueue is the queue of the workflow's worker, which registers it.
	TaskQueue string
}

// Execute runs the local activity from workflow code and waits for its
// result, with the options that ctx carries from
// workflow.WithLocalActivityOptions.
func (a LocalActivity[In, Out]) Execute(ctx workflow.Context, in In) (Out, error) {
	return get[Out](ctx, workflow.ExecuteLocalActivity(ctx, a.Name, in))
}

// Declaration returns a's name, queue and types, for the registration test.
func (a LocalActivity[In, Out]) Declaration() Declaration {
	return declaration[In, Out](a.Name, a.TaskQueue, true)
}

// Declaration is an activity's declaration with its types spelled out, for
// reflection.
type Declaration struct {
	// Name is the activity type's name.
	Name string
	// TaskQueue is the queue of the worker that must register it.
	TaskQueue string
	// Local says that it runs as a local activity.
	Local bool
	// Arg is the type of the argument after the context.
	Arg reflect.Type
	// Result is the type of the result before the error, nil when the
	// activity returns only an error.
	Result reflect.Type
}

func declaration[In, Out any](name, queue string, local bool) Declaration {
	d := Declaration{Name: name, TaskQueue: queue, Local: local, Arg: reflect.TypeFor[In]()}
	if out := reflect.TypeFor[Out](); out != reflect.TypeFor[None]() {
		d.Result = out
	}
	return d
}

// get waits for f. An activity declared with None has no result to decode.
func get[Out any](ctx workflow.Context, f workflow.Future) (Out, error) {
	var out Out
	ptr := any(&out)
	if _, none := ptr.(*None); none {
		ptr = nil
	}
	err := f.Get(ctx, ptr)
	return out, err
}
