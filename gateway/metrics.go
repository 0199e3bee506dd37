package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ordersaga/ordersaga/internal/monitor"
)

// systemMetrics is GET /system/metrics: the monitoring figures of the
// last 15 minutes (internal/monitor), built at most once per step
// whoever asks.
func (s *Server) systemMetrics(c *gin.Context) {
	c.JSON(http.StatusOK, s.monitor.Report(c))
}

// newMonitor returns the gateway's monitor over its dependencies: the
// orders' events, the orders database's statistics, this process's
// registry, the hub's status and Temporal's task queues.
func (s *Server) newMonitor(deps Deps) *monitor.Monitor {
	src := monitor.Sources{}
	for _, q := range workerQueues() {
		src.TaskQueues = append(src.TaskQueues, q.queue)
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

// backlog is what Temporal says of one of the workers' task queues: its
// approximate backlog and the age of its oldest waiting task
// (DescribeTaskQueue's stats).
func (s *Server) backlog(ctx context.Context, queue string) (monitor.Backlog, error) {
	for _, q := range workerQueues() {
		if q.queue == queue {
			resp, err := s.describeQueue(ctx, q.queue, q.typ)
			if err != nil {
				return monitor.Backlog{}, err
			}
			st := resp.GetStats()
			return monitor.Backlog{Tasks: st.GetApproximateBacklogCount(), OldestAge: st.GetApproximateBacklogAge().AsDuration()}, nil
		}
	}
	return monitor.Backlog{}, fmt.Errorf("no worker polls task queue %q", queue)
}
