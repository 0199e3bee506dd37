package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// eventRate is how fast the benchmark produces events to Kafka.
const eventRate = 50

// BenchmarkFanout measures the hub: N clients subscribed to "all", b.N
// events produced to Kafka at 50/s. It reports events/s delivered to
// clients, the delay from produce to client (p50, p99) and the memory per
// connection (hub and client sides together: both run in this process).
// make fanout measures the hub alone, in a process of its own.
//
// Run: go test -run '^$' -bench Fanout -benchtime 200x -count 3 ./ws/
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { fanout(b, n) })
	}
}

func fanout(b *testing.B, clients int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	brokers := testkit.KafkaBrokers(b)
	topic := "bench-" + uuid.NewString()[:8]
	log := testkit.Logger()
	consumer, err := ws.Consumer(brokers, topic, time.Now(), log)
	if err != nil {
		b.Fatal(err)
	}
	defer consumer.Close()
	if err := kafkaclient.EnsureTopic(ctx, consumer, topic, 6); err != nil {
		b.Fatal(err)
	}
	tokens := authn.New(strings.Repeat("b", 32), time.Hour, time.Now)
	hub := ws.New(ws.Deps{Tokens: tokens, Registry: prometheus.NewRegistry(), Log: log}, ws.Settings{Topic: topic})
	go hub.Consume(ctx, consumer)
	srv := httptest.NewServer(hub.Handler())
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	token, _, _ := tokens.Issue(authn.Claims{UserID: uuid.New(), Role: "admin"})

	before := heap()
	conns := make([]*websocket.Conn, clients)
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	for i := range conns {
		c, _, err := dialer.Dial(url+"?token="+token, nil)
		if err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
		if err := c.WriteJSON(map[string]string{"type": "subscribe", "scope": "all"}); err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	for hub.Stats().AllSubs < clients {
		time.Sleep(10 * time.Millisecond)
	}
	perConn := float64(heap()-before) / float64(clients)

	producer, err := kafkaclient.Producer(brokers, topic, 10*time.Second, log)
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()

	events := b.N
	sent := make([]time.Time, events+1)
	var mu sync.Mutex
	delays := make([]time.Duration, 0, clients*events)
	var lastRecv time.Time
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *websocket.Conn) {
			defer wg.Done()
			local := make([]time.Duration, 0, events)
			var m struct{ Seq int }
			for got := 0; got < events; got++ {
				_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
				_, data, err := c.ReadMessage()
				if err != nil {
					b.Errorf("after %d events: %v", got, err)
					return
				}
				now := time.Now()
				if json.Unmarshal(data, &m) == nil && m.Seq > 0 && m.Seq <= events {
					local = append(local, now.Sub(sent[m.Seq]))
				}
			}
			mu.Lock()
			delays = append(delays, local...)
			if t := time.Now(); t.After(lastRecv) {
				lastRecv = t
			}
			mu.Unlock()
		}(c)
	}

	b.ResetTimer()
	start := time.Now()
	orderID := uuid.New()
	tick := time.NewTicker(time.Second / eventRate)
	for seq := 1; seq <= events; seq++ {
		<-tick.C
		e := order.OrderEvent{OrderID: orderID, CustomerID: uuid.New(), Seq: seq, Status: "PENDING", OccurredAt: time.Now()}.Complete()
		data, _ := json.Marshal(e)
		sent[seq] = time.Now()
		producer.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(orderID.String()), Value: data}, nil)
	}
	tick.Stop()
	wg.Wait()
	b.StopTimer()

	elapsed := lastRecv.Sub(start)
	slices.Sort(delays)
	if len(delays) == 0 {
		b.Fatal("no deliveries")
	}
	b.ReportMetric(float64(len(delays))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(perConn/1024, "KiB/conn")
	b.ReportMetric(0, "ns/op")
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
