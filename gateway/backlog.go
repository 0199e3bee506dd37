package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backlogCollector exports the approximate backlog of each worker's task
// queue, as the Temporal server counts it, read at each scrape. The SDK's
// own metrics say how long tasks waited before a worker took them
// (schedule-to-start), and not how many wait: a queue that nobody polls
// has no worker to report anything.
type backlogCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func newBacklogCollector(s *Server) backlogCollector {
	return backlogCollector{s: s, desc: prometheus.NewDesc("ordersaga_temporal_task_queue_backlog",
		"Tasks waiting in a worker's task queue (the Temporal server's approximate count), by task queue; absent while Temporal does not answer.",
		[]string{"task_queue"}, nil)}
}

// Describe implements prometheus.Collector.
func (b backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector. A queue whose stats do not come
// within the scrape's budget is left out of this scrape, rather than shown
// as empty.
func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, q := range workerQueues() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := b.s.describeQueue(ctx, q.queue, q.typ)
			if err != nil || resp.GetStats() == nil {
				return
			}
			ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(resp.GetStats().GetApproximateBacklogCount()), q.queue)
		}()
	}
	wg.Wait()
}
