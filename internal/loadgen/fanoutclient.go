package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

// fanoutClient is one websocket and what it received; its reader alone
// writes these fields until it has finished.
type fanoutClient struct {
	n    int
	conn *websocket.Conn
	// got has a bit per event; lastSeq, the highest seq seen per order.
	got                                          []uint64
	lastSeq                                      []uint8
	duplicates, outOfOrder, errorFrames, foreign int64
	// received counts the events received, each once; the progress line
	// reads it meanwhile. (One counter per client: a counter that every
	// reader adds to would bounce between the cores a quarter of a million
	// times a second.)
	received atomic.Int64
	last     time.Time
	closedBy string
	finished chan struct{}
}

// read receives one client's frames until its connection ends.
func (r *fanoutRun) read(c *fanoutClient) {
	defer close(c.finished)
	c.got = make([]uint64, (r.events+63)/64)
	c.lastSeq = make([]uint8, len(r.orderIDs))
	shard := &r.delays[c.n%len(r.delays)]
	var buf []byte
	for {
		_, rd, err := c.conn.NextReader()
		if err == nil {
			buf, err = readAll(rd, buf[:0])
		}
		if err != nil {
			if !r.stopping.Load() {
				c.closedBy = closeKind(err)
				r.dropped.Add(1)
			}
			return
		}
		at := time.Now()
		id, seq, sent, ok := parseEvent(buf)
		if !ok {
			c.errorFrames++ // the hub sends events and error frames only
			continue
		}
		o, known := r.orders[id]
		if !known || seq < 1 || seq > len(statuses) {
			c.foreign++ // an event of another run, still on the topic
			continue
		}
		i := o*len(statuses) + seq - 1
		if c.got[i/64]&(1<<(i%64)) != 0 {
			c.duplicates++
			continue
		}
		c.got[i/64] |= 1 << (i % 64)
		if uint8(seq) < c.lastSeq[o] {
			c.outOfOrder++
		}
		c.lastSeq[o] = max(c.lastSeq[o], uint8(seq))
		c.last = at
		shard.Lock()
		record(shard.h, at.Sub(sent))
		shard.Unlock()
		if c.received.Add(1) == int64(r.events) {
			r.complete.Add(1)
		}
	}
}

// readAll reads a message into buf, reusing its storage: thousands of
// clients each reading fifty messages a second would otherwise allocate
// a buffer per message.
func readAll(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// closeKind names how a connection ended: the hub's close code, or
// "network" when it just went.
func closeKind(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprint(ce.Code)
	}
	return "network"
}

var (
	eventIDField    = []byte(`"event_id":"`)
	occurredAtField = []byte(`"occurred_at":"`)
)

// parseEvent reads an event frame's order, seq and occurred_at. It looks
// for the two fields rather than decode the JSON: the clients run beside
// the hub on the same machine, and decoding a quarter of a million frames
// a second would take CPU from the hub being measured. The event_id is
// "<order_id>:<seq>" (API.md); ok is false for any other frame.
func parseEvent(b []byte) (id uuid.UUID, seq int, at time.Time, ok bool) {
	v, found := stringField(b, eventIDField)
	if !found || len(v) < 38 || v[36] != ':' {
		return id, 0, at, false
	}
	id, err := uuid.ParseBytes(v[:36])
	if err != nil {
		return id, 0, at, false
	}
	for _, d := range v[37:] {
		if d < '0' || d > '9' || seq > 1<<30 {
			return id, 0, at, false
		}
		seq = seq*10 + int(d-'0')
	}
	ts, found := lastStringField(b, occurredAtField)
	if !found {
		return id, 0, at, false
	}
	if at, err = time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		return id, 0, at, false
	}
	return id, seq, at, true
}

// stringField is the value of the first string field called name (given
// with its quotes, colon and opening quote). A JSON string holds no
// unescaped quote, so the value ends at the next one.
func stringField(b, name []byte) ([]byte, bool) {
	return valueAt(b, bytes.Index(b, name), name)
}

// lastStringField is stringField for the last field called name, found
// from the end: occurred_at is the event's last field.
func lastStringField(b, name []byte) ([]byte, bool) {
	return valueAt(b, bytes.LastIndex(b, name), name)
}

func valueAt(b []byte, i int, name []byte) ([]byte, bool) {
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(name):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}
