package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	workerpb "go.temporal.io/api/worker/v1"
	"go.temporal.io/api/workflowservice/v1"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ordersaga/ordersaga/internal/temporalclient"
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

// workerQueue is the task queue a worker polls, and which of its task
// types show its backlog.
type workerQueue struct {
	name, queue string
	typ         enums.TaskQueueType
}

// workerQueues are the queues of ordersaga's three workers.
func workerQueues() []workerQueue {
	return []workerQueue{
		{"order worker", order.TaskQueueOrders, enums.TASK_QUEUE_TYPE_WORKFLOW},
		{"product worker", order.TaskQueueProduct, enums.TASK_QUEUE_TYPE_ACTIVITY},
		{"payment worker", order.TaskQueuePayment, enums.TASK_QUEUE_TYPE_ACTIVITY},
	}
}

// A worker is up while its heartbeats say it runs and keep coming: its
// newest is RUNNING and younger than three heartbeat intervals (15 s).
// A worker that stops sends a last heartbeat that says so, and shows down
// at once; one that dies shows down when three are missing.
const heartbeatUpWithin = 3 * temporalclient.WorkerHeartbeatInterval

// pollerUpWithin is how recently a worker must have polled to count as up
// on a server without worker heartbeats; the server forgets a poller a
// minute after its last poll, so a stopped worker shows up that long.
const pollerUpWithin = time.Minute

// statusTTL is how long one computed status serves: every open system
// page asks every few seconds, and each computation asks Temporal, the hub
// and the database.
const statusTTL = time.Second

// systemStatusBody is GET /system/status.
type systemStatusBody struct {
	Components []componentStatus `json:"components"`
	Outbox     *outboxStatus     `json:"outbox,omitempty"`
}

func (s *Server) systemStatus(c *gin.Context) {
	body, err := s.status.get(c, s.now, func(ctx context.Context) (systemStatusBody, error) { return s.computeStatus(ctx), nil })
	if err != nil {
		s.fail(c, unavailable("the system status")) // the caller went away first
		return
	}
	c.JSON(http.StatusOK, body)
}

// computeStatus asks every component how it is, each within the budget.
func (s *Server) computeStatus(ctx context.Context) systemStatusBody {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	now := s.now().UTC()
	var out systemStatusBody
	out.Components = append(out.Components, componentStatus{Name: "gateway", Up: true, LastSeen: &now})

	queues := workerQueues()
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
	return out
}

// shared holds one computed value for a while, and lets callers that miss
// it at the same moment share one computation, made on a context of its
// own so that one caller's cancellation is not everyone's answer.
type shared[T any] struct {
	ttl     time.Duration
	timeout time.Duration
	calls   singleflight.Group
	mu      sync.Mutex
	at      time.Time
	val     T
	ok      bool
}

func (c *shared[T]) get(ctx context.Context, now func() time.Time, compute func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	if c.ok && now().Sub(c.at) >= 0 && now().Sub(c.at) < c.ttl {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	ch := c.calls.DoChan("", func() (any, error) {
		cctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		v, err := compute(cctx)
		if err == nil {
			c.mu.Lock()
			c.at, c.val, c.ok = now(), v, true
			c.mu.Unlock()
		}
		return v, err
	})
	select {
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case r := <-ch:
		v, _ := r.Val.(T)
		return v, r.Err
	}
}

// workerStatus is the status of the worker of one task queue: from the
// workers' heartbeats (ListWorkers) where the server keeps them, else from
// the queue's pollers, saying so in detail. The backlog comes from the
// queue's stats either way.
func (s *Server) workerStatus(ctx context.Context, name, queue string, typ enums.TaskQueueType, now time.Time) componentStatus {
	st := componentStatus{Name: name}
	desc, descErr := s.describeQueue(ctx, queue, typ)
	if stats := desc.GetStats(); descErr == nil && stats != nil {
		n := stats.GetApproximateBacklogCount()
		st.Backlog = &n
	}
	heartbeats, err := s.workerHeartbeats(ctx, queue)
	switch {
	case err == nil && len(heartbeats) == 0 && descErr == nil && len(desc.GetPollers()) > 0:
		// Pollers but no heartbeats: a worker that has just started and
		// not yet sent its first, or a server that lists workers but keeps
		// none of their heartbeats (or workers started before it did).
		judgePollers(&st, desc.GetPollers(), now)
		st.Detail = ""
		if s.beats.silentFor(queue, now) >= heartbeatUpWithin {
			st.Detail = "judged by its pollers: no worker of this queue sends heartbeats (frontend.WorkerHeartbeatsEnabled), so a stopped worker shows up for a minute"
		}
	case err == nil:
		s.beats.heard(queue)
		judgeHeartbeats(&st, s.beats.localize(heartbeats, now), now)
	case errors.Is(err, errNoHeartbeats) && descErr == nil:
		judgePollers(&st, desc.GetPollers(), now)
	default:
		st.Detail = "temporal unavailable"
	}
	return st
}

// queueDescribeTTL is how long one answer of DescribeTaskQueue serves:
// the status page, the monitoring and a Prometheus scrape each ask for
// the same three queues every few seconds, and while Temporal is down
// every failed call also lengthens the client's reconnect backoff.
const queueDescribeTTL = 2 * time.Second

// describeQueue describes one of the workers' task queues with its stats,
// from an answer at most queueDescribeTTL old. Callers that miss the cache
// at the same moment share one call, made on a context of its own, so that
// neither a burst of requests multiplies the calls to Temporal nor one
// caller's cancellation becomes everyone's answer.
func (s *Server) describeQueue(ctx context.Context, queue string, typ enums.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error) {
	return s.queues.get(ctx, queue, s.now, func(ctx context.Context) (*workflowservice.DescribeTaskQueueResponse, error) {
		resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace:     s.settings.Namespace,
			TaskQueue:     &taskqueuepb.TaskQueue{Name: queue, Kind: enums.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: typ,
			ReportStats:   true,
		})
		if err != nil {
			return nil, fmt.Errorf("describe task queue %s: %w", queue, err)
		}
		return resp, nil
	})
}

// queueCallTimeout bounds a shared DescribeTaskQueue call.
const queueCallTimeout = 2 * time.Second

// queueCache keeps the latest answer, or error, of DescribeTaskQueue per
// queue for queueDescribeTTL.
type queueCache struct {
	calls   singleflight.Group
	mu      sync.Mutex
	answers map[string]queueAnswer
}

type queueAnswer struct {
	at   time.Time
	resp *workflowservice.DescribeTaskQueueResponse
	err  error
}

func (c *queueCache) get(ctx context.Context, queue string, now func() time.Time, describe func(context.Context) (*workflowservice.DescribeTaskQueueResponse, error)) (*workflowservice.DescribeTaskQueueResponse, error) {
	if a, ok := c.fresh(queue, now(), queueDescribeTTL); ok {
		return a.resp, a.err
	}
	ch := c.calls.DoChan(queue, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.Background(), queueCallTimeout)
		defer cancel()
		resp, err := describe(cctx)
		c.mu.Lock()
		if c.answers == nil {
			c.answers = map[string]queueAnswer{}
		}
		c.answers[queue] = queueAnswer{at: now(), resp: resp, err: err}
		c.mu.Unlock()
		return resp, err
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		resp, _ := r.Val.(*workflowservice.DescribeTaskQueueResponse)
		return resp, r.Err
	}
}

// fresh is the answer for queue if it is younger than maxAge.
func (c *queueCache) fresh(queue string, now time.Time, maxAge time.Duration) (queueAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[queue]
	if !ok || now.Sub(a.at) < 0 || now.Sub(a.at) >= maxAge {
		return queueAnswer{}, false
	}
	return a, true
}

// errNoHeartbeats is a server that keeps no worker heartbeats: older than
// 1.29, or without frontend.WorkerHeartbeatsEnabled and
// frontend.ListWorkersEnabled (README, Production shape).
var errNoHeartbeats = errors.New("the Temporal server keeps no worker heartbeats")

// workerHeartbeats returns the newest heartbeat of each worker of queue
// that the server remembers, running or stopped.
func (s *Server) workerHeartbeats(ctx context.Context, queue string) ([]*workerpb.WorkerHeartbeat, error) {
	var out []*workerpb.WorkerHeartbeat
	var token []byte
	// Each page holds up to 1000 workers; a few pages are more instances
	// of one queue than any deployment of ordersaga runs.
	for range 5 {
		resp, err := s.temporal.WorkflowService().ListWorkers(ctx, &workflowservice.ListWorkersRequest{
			Namespace: s.settings.Namespace, Query: fmt.Sprintf("TaskQueue = %q", queue), PageSize: 1000, NextPageToken: token,
		})
		var unimplemented *serviceerror.Unimplemented
		var precondition *serviceerror.FailedPrecondition
		var denied *serviceerror.PermissionDenied
		if errors.As(err, &unimplemented) || errors.As(err, &precondition) || errors.As(err, &denied) {
			return nil, errNoHeartbeats
		}
		if err != nil {
			return nil, fmt.Errorf("list workers of %s: %w", queue, err)
		}
		//lint:ignore SA1019 servers up to 1.29 fill only workers_info; its replacement, workers, carries no heartbeat time.
		infos := resp.GetWorkersInfo()
		if len(infos) == 0 && len(resp.GetWorkers()) > 0 {
			// A newer server that lists workers without their heartbeats:
			// they cannot say how fresh they are.
			return nil, errNoHeartbeats
		}
		for _, info := range infos {
			if hb := info.GetWorkerHeartbeat(); hb != nil {
				out = append(out, hb)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out, nil
}

// judgeHeartbeats sets st from the newest heartbeat of each worker of a
// queue: up while one of them runs (see heartbeatUpWithin). last_seen is
// the newest heartbeat of a running worker, else the newest of all.
func judgeHeartbeats(st *componentStatus, heartbeats []*workerpb.WorkerHeartbeat, now time.Time) {
	var newest, newestRunning time.Time
	var newestStatus enums.WorkerStatus
	running := 0
	for _, hb := range heartbeats {
		at := hb.GetHeartbeatTime().AsTime().UTC()
		if at.After(newest) {
			newest, newestStatus = at, hb.GetStatus()
		}
		if hb.GetStatus() == enums.WORKER_STATUS_RUNNING && now.Sub(at) < heartbeatUpWithin {
			running++
			if at.After(newestRunning) {
				newestRunning = at
			}
		}
	}
	st.Up = running > 0
	switch {
	case len(heartbeats) == 0:
		st.Detail = "no worker has sent a heartbeat"
	case running > 1:
		st.LastSeen = &newestRunning
		st.Detail = fmt.Sprintf("%d workers running", running)
	case running == 1:
		st.LastSeen = &newestRunning
	case newestStatus == enums.WORKER_STATUS_SHUTTING_DOWN || newestStatus == enums.WORKER_STATUS_SHUTDOWN:
		st.LastSeen = &newest
		st.Detail = "stopped"
	case now.Sub(newest) >= heartbeatUpWithin:
		st.LastSeen = &newest
		st.Detail = fmt.Sprintf("not heard from for %s", now.Sub(newest).Round(time.Second))
	default:
		st.LastSeen = &newest
		st.Detail = "reports status " + newestStatus.String()
	}
}

// judgePollers sets st from the queue's pollers, on a server without
// worker heartbeats.
func judgePollers(st *componentStatus, pollers []*taskqueuepb.PollerInfo, now time.Time) {
	for _, p := range pollers {
		if t := p.GetLastAccessTime().AsTime().UTC(); st.LastSeen == nil || t.After(*st.LastSeen) {
			st.LastSeen = &t
		}
	}
	st.Up = st.LastSeen != nil && now.Sub(*st.LastSeen) < pollerUpWithin
	if st.Up {
		st.Detail = "judged by its pollers: this Temporal server keeps no worker heartbeats, so a stopped worker shows up for a minute"
	} else {
		st.Detail = "no poller within a minute (this Temporal server keeps no worker heartbeats)"
	}
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

// heartbeatClock judges heartbeats by this gateway's clock: a heartbeat
// carries the time of the worker's clock, which may run behind (the
// worker would look dead while it runs) or ahead (it would look alive
// after it died). Each worker instance's heartbeat counts from when this
// gateway first saw it; the first heartbeat seen of an instance counts
// from its own time unless that is in the future.
type heartbeatClock struct {
	mu   sync.Mutex
	seen map[string]seenBeat // by worker instance key
	// silentSince is, by task queue, since when its pollers have been
	// seen without any heartbeat.
	silentSince map[string]time.Time
}

// silentFor is how long queue has had pollers and no heartbeat, counting
// from this call if it is the first such.
func (c *heartbeatClock) silentFor(queue string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.silentSince == nil {
		c.silentSince = map[string]time.Time{}
	}
	since, ok := c.silentSince[queue]
	if !ok {
		c.silentSince[queue], since = now, now
	}
	return now.Sub(since)
}

// heard notes that queue's workers send heartbeats.
func (c *heartbeatClock) heard(queue string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.silentSince, queue)
}

type seenBeat struct {
	sent, at time.Time
}

// forgetBeatsAfter is how long an instance that sends nothing more is
// remembered; the server stops listing it well before.
const forgetBeatsAfter = 10 * time.Minute

// localize returns copies of heartbeats whose time is when this gateway
// saw them, by its clock.
func (c *heartbeatClock) localize(heartbeats []*workerpb.WorkerHeartbeat, now time.Time) []*workerpb.WorkerHeartbeat {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]seenBeat{}
	}
	out := make([]*workerpb.WorkerHeartbeat, 0, len(heartbeats))
	for _, hb := range heartbeats {
		key, sent := hb.GetWorkerInstanceKey(), hb.GetHeartbeatTime().AsTime()
		if key == "" {
			out = append(out, hb)
			continue
		}
		prev, known := c.seen[key]
		at := now
		switch {
		case known && prev.sent.Equal(sent):
			at = prev.at
		case !known && sent.Before(now):
			at = sent
		}
		c.seen[key] = seenBeat{sent: sent, at: at}
		local := proto.Clone(hb).(*workerpb.WorkerHeartbeat)
		local.HeartbeatTime = timestamppb.New(at)
		out = append(out, local)
	}
	for key, b := range c.seen {
		if now.Sub(b.at) > forgetBeatsAfter {
			delete(c.seen, key)
		}
	}
	return out
}
