package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// componentStatus is one line of GET /system/status.
type componentStatus struct {
	Name     string     `json:"name"`
	Up       bool       `json:"up"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Backlog is the task queue's approximate backlog (workers only).
	Backlog *int64 `json:"backlog,omitempty"`
	// KafkaConsumerLag is how many records the hub has not read (hub only).
	KafkaConsumerLag *int64 `json:"kafka_consumer_lag,omitempty"`
	// Connections is the hub's open websockets (hub only).
	Connections *int64 `json:"connections,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

type outboxStatus struct {
	Unpublished      int64   `json:"unpublished"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// workerUpWithin is how recently a worker must have polled to count as up.
const workerUpWithin = time.Minute

func (s *Server) systemStatus(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c, 3*time.Second)
	defer cancel()
	now := s.now().UTC()
	out := struct {
		Components []componentStatus `json:"components"`
		Outbox     *outboxStatus     `json:"outbox,omitempty"`
	}{}
	out.Components = append(out.Components, componentStatus{Name: "gateway", Up: true, LastSeen: &now})

	queues := []struct {
		name, queue string
		typ         enums.TaskQueueType
	}{
		{"order worker", order.TaskQueueOrders, enums.TASK_QUEUE_TYPE_WORKFLOW},
		{"product worker", order.TaskQueueProduct, enums.TASK_QUEUE_TYPE_ACTIVITY},
		{"payment worker", order.TaskQueuePayment, enums.TASK_QUEUE_TYPE_ACTIVITY},
	}
	workers := make([]componentStatus, len(queues))
	var wg sync.WaitGroup
	for i, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i] = s.workerStatus(ctx, q.name, q.queue, q.typ, now)
		}()
	}
	hub := componentStatus{Name: "ws hub"}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hub = s.hubStatus(ctx, now)
	}()
	wg.Wait()
	out.Components = append(out.Components, workers...)
	out.Components = append(out.Components, hub, s.relayStatus(ctx))

	if n, age, err := s.outbox.Lag(ctx); err == nil {
		out.Outbox = &outboxStatus{Unpublished: n, OldestAgeSeconds: age.Seconds()}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) workerStatus(ctx context.Context, name, queue string, typ enums.TaskQueueType, now time.Time) componentStatus {
	st := componentStatus{Name: name}
	resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.settings.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: queue, Kind: enums.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: typ,
		ReportStats:   true,
	})
	if err != nil {
		st.Detail = "temporal unavailable"
		return st
	}
	for _, p := range resp.GetPollers() {
		if t := p.GetLastAccessTime().AsTime(); st.LastSeen == nil || t.After(*st.LastSeen) {
			t = t.UTC()
			st.LastSeen = &t
		}
	}
	st.Up = st.LastSeen != nil && now.Sub(*st.LastSeen) < workerUpWithin
	if stats := resp.GetStats(); stats != nil {
		n := stats.GetApproximateBacklogCount()
		st.Backlog = &n
	}
	return st
}

// relayStatus: the relay is up while a session holds its advisory lock.
func (s *Server) relayStatus(ctx context.Context) componentStatus {
	st := componentStatus{Name: "outbox relay"}
	active, last, err := s.outbox.RelayStatus(ctx)
	if err != nil {
		st.Detail = "orders database unavailable"
		return st
	}
	st.Up = active
	if last != nil {
		t := last.UTC()
		st.LastSeen = &t
	}
	if !active {
		st.Detail = "no relay holds the lock: events wait in the outbox"
	}
	return st
}

// hubStatus reads the websocket hub's /status, on the hub's ops address
// (WS_OPS_URL / WS_OPS_ADDR).
func (s *Server) hubStatus(ctx context.Context, now time.Time) componentStatus {
	st := componentStatus{Name: "ws hub"}
	if s.settings.HubStatusURL == "" {
		st.Detail = "not configured"
		return st
	}
	hs, err := s.readHub(ctx)
	if err != nil {
		st.Detail = "not answering"
		return st
	}
	st.Up, st.LastSeen = true, &now
	st.Connections, st.KafkaConsumerLag = &hs.Connections, &hs.KafkaConsumerLag
	return st
}

// hubReport is what the hub's /status says.
type hubReport struct {
	Connections      int64 `json:"connections"`
	KafkaConsumerLag int64 `json:"kafka_consumer_lag"`
}

// readHub reads the hub's /status; an error if it does not answer 200
// with its report.
func (s *Server) readHub(ctx context.Context) (hubReport, error) {
	var hs hubReport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.settings.HubStatusURL, nil)
	if err != nil {
		return hs, fmt.Errorf("bad hub status URL: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return hs, fmt.Errorf("read the hub's status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return hs, fmt.Errorf("read the hub's status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&hs); err != nil {
		return hs, fmt.Errorf("decode the hub's status: %w", err)
	}
	return hs, nil
}
