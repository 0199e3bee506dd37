package ws

import "encoding/binary"

// outFrame is one message as the bytes of a websocket text frame, encoded
// once and shared, read-only, by every connection that sends it: an event
// goes to thousands of connections, and framing (and copying) it for each
// would cost the hub more than the event itself.
type outFrame struct {
	b []byte
}

// textFrame frames payload as one final, unmasked text frame, as a server
// sends it (RFC 6455, section 5.2). The hub negotiates no extension, so
// the payload goes as is.
func textFrame(payload []byte) *outFrame {
	n := len(payload)
	var b []byte
	switch {
	case n <= 125:
		b = append(make([]byte, 0, 2+n), 0x81, byte(n))
	case n <= 0xFFFF:
		b = append(make([]byte, 0, 4+n), 0x81, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(make([]byte, 0, 10+n), 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return &outFrame{b: append(b, payload...)}
}
