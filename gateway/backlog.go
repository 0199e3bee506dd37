package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backlogCollector exports the approximate backlog of each worker's task
// queue, as the Temporal server counts it, as the gateway last read it
// (the monitoring reads it every few seconds). The SDK's
// own metrics say how long tasks waited before a worker took them
// (schedule-to-start), and not how many wait: a queue that nobody polls
// has no worker to report anything.
type backlogCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func newBacklogCollector(s *Server) backlogCollector {
	return backlogCollector{s: s, desc: prometheus.NewDesc("ordersaga_temporal_task_queue_backlog",
		"Tasks waiting in a worker's task queue (the Temporal server's approximate count, read by the gateway every few seconds), by task queue; absent while Temporal does not answer.",
		[]string{"task_queue"}, nil)}
}

// Describe implements prometheus.Collector.
func (b backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// backlogScrapeMaxAge is how old a backlog may be to be exported: the
// monitoring refreshes it every few seconds; a scrape never calls Temporal
// itself, so that anyone who can reach /metrics cannot make the gateway
// call Temporal.
const backlogScrapeMaxAge = 30 * time.Second

// Collect implements prometheus.Collector: it exports the backlogs that
// the gateway read recently, and leaves out a queue it has no recent
// answer for rather than show it empty.
func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	now := b.s.now()
	for _, q := range workerQueues() {
		a, ok := b.s.queues.fresh(q.queue, now, backlogScrapeMaxAge)
		if !ok || a.err != nil || a.resp.GetStats() == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(a.resp.GetStats().GetApproximateBacklogCount()), q.queue)
	}
}
