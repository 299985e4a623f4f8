// Package wsstream reads MQTT over WebSocket as the byte stream it is: the payloads of consecutive
// binary messages back to back, a packet free to span messages [MQTT-6.0.0-2]. The test brokers and
// clients of this module (devbroker, hostilebroker, barepub, mqttprobe) share it; the agent's own connection is
// in transport.
//
// A Reader is used by one goroutine at a time, like the websocket.Conn it reads.
package wsstream

import (
	"errors"
	"io"

	"github.com/gorilla/websocket"
)

// ErrNotBinary is returned when the peer sends a text message, which MQTT over WebSocket forbids
// [MQTT-6.0.0-1].
var ErrNotBinary = errors.New("wsstream: non-binary WebSocket message")

// Reader reads the bytes of WS's binary messages as one stream.
type Reader struct {
	WS *websocket.Conn
	r  io.Reader // the message being read; nil between messages
}

// Read reads from the current message, moving to the next one at its end. It returns WS's error
// (a close, a deadline) or ErrNotBinary.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.r == nil {
			typ, rd, err := r.WS.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, ErrNotBinary
			}
			r.r = rd
		}
		n, err := r.r.Read(p)
		if err == io.EOF {
			r.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}
