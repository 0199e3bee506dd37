package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/ordersaga/ordersaga/internal/monitor"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// systemMetrics is GET /system/metrics: the monitoring figures of the
// last 15 minutes (internal/monitor), built at most once per step
// whoever asks.
func (s *Server) systemMetrics(c *gin.Context) {
	c.JSON(http.StatusOK, s.monitor.Report(c))
}

// backlogQueues are the task queues whose backlog the monitoring charts,
// with the kind of task their workers poll, as the system status counts
// them.
var backlogQueues = map[string]enums.TaskQueueType{
	order.TaskQueueOrders:  enums.TASK_QUEUE_TYPE_WORKFLOW,
	order.TaskQueueProduct: enums.TASK_QUEUE_TYPE_ACTIVITY,
	order.TaskQueuePayment: enums.TASK_QUEUE_TYPE_ACTIVITY,
}

// newMonitor returns the gateway's monitor over its dependencies: the
// orders' events, the orders database's statistics, this process's
// registry, the hub's status and Temporal's task queues.
func (s *Server) newMonitor(deps Deps) *monitor.Monitor {
	src := monitor.Sources{
		TaskQueues: []string{order.TaskQueueOrders, order.TaskQueueProduct, order.TaskQueuePayment},
	}
	// Nil pointers must stay nil interfaces, which the monitor reports as
	// missing sources.
	if deps.Outbox != nil {
		src.Orders = deps.Outbox
	}
	if deps.OrdersStats != nil {
		src.Database = deps.OrdersStats
	}
	if deps.Registry != nil {
		src.Gatherer = deps.Registry
	}
	if s.settings.HubStatusURL != "" {
		src.HubLag = s.hubLag
	}
	if s.temporal != nil {
		src.Backlog = s.backlog
	}
	return monitor.New(src, monitor.Options{Now: deps.Now, Log: s.log})
}

// hubLag is the hub's Kafka consumer lag, from its /status.
func (s *Server) hubLag(ctx context.Context) (int64, error) {
	hs, err := s.readHub(ctx)
	if err != nil {
		return 0, err
	}
	return hs.KafkaConsumerLag, nil
}

// backlog is the approximate backlog of a task queue (DescribeTaskQueue's
// stats).
func (s *Server) backlog(ctx context.Context, queue string) (int64, error) {
	resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.settings.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: queue, Kind: enums.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: backlogQueues[queue],
		ReportStats:   true,
	})
	if err != nil {
		return 0, fmt.Errorf("describe task queue %s: %w", queue, err)
	}
	return resp.GetStats().GetApproximateBacklogCount(), nil
}
