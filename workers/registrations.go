package workers

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// registration is what one worker registers besides the workflow: a struct
// whose exported methods are all activities, each registered under its
// method name, on the task queue the worker polls. The worker constructors
// and the registration test both build them here, so that the test checks
// what the workers register.
type registration struct {
	worker     string
	taskQueue  string
	activities any
}

// orderActivities is what the order worker registers: RecordStatus, which
// the workflow runs as a local activity on the same worker.
func orderActivities(rec orders.Recorder, log *zap.Logger) registration {
	return registration{worker: "order", taskQueue: order.TaskQueueOrders, activities: orders.NewActivities(rec, log)}
}

// productActivities is what the product worker registers: the inventory
// activities.
func productActivities(catalog *pgxpool.Pool, log *zap.Logger) registration {
	return registration{worker: "product", taskQueue: order.TaskQueueProduct, activities: inventory.New(catalog, log)}
}

// paymentActivities is what the payment worker registers: the payment
// activities.
func paymentActivities(payments *pgxpool.Pool, provider payment.Provider, log *zap.Logger) registration {
	return registration{worker: "payment", taskQueue: order.TaskQueuePayment, activities: payment.New(payments, provider, log)}
}

// registrations lists what every worker registers, with no dependencies:
// only the types matter to the test. A new worker belongs here too.
func registrations() []registration {
	return []registration{
		orderActivities(nil, zap.NewNop()),
		productActivities(nil, zap.NewNop()),
		paymentActivities(nil, nil, zap.NewNop()),
	}
}

// newWorker returns a worker on r's task queue with r's activities
// registered.
func newWorker(c client.Client, r registration, opts worker.Options) worker.Worker {
	w := worker.New(c, r.taskQueue, opts)
	w.RegisterActivity(r.activities)
	return w
}
