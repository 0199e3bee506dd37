package ws

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFramesReadAsMessages: frames the hub encodes itself, of each length
// encoding and sent together in one write, reach a websocket client as
// the messages they hold, in order.
func TestFramesReadAsMessages(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 300, 65535, 65536, 200_000}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var bufs net.Buffers
		for i, n := range sizes {
			bufs = append(bufs, textFrame(message(i, n)).b)
		}
		if _, err := bufs.WriteTo(c.UnderlyingConn()); err != nil {
			t.Errorf("write the frames: %v", err)
		}
		_, _, _ = c.ReadMessage() // until the client goes
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, n := range sizes {
		kind, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, n, err)
		}
		if kind != websocket.TextMessage || !bytes.Equal(got, message(i, n)) {
			t.Errorf("message %d: a %d of %d bytes, want a text message of %d", i, kind, len(got), n)
		}
	}
}

// message is n bytes that differ with i.
func message(i, n int) []byte {
	return bytes.Repeat([]byte{byte('a' + i)}, n)
}
