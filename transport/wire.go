package transport

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/eclipse/paho.golang/packets"
)

// wire is one connected MQTT session in one protocol version: the only part of the transport that
// differs between MQTT 5 (wire5, paho.golang) and MQTT 3.1.1 / 3.1 (wire3, paho.mqtt.golang's packet
// codec under our own session). The reconnect loop, backoff, keepalive, window, ordered pipeline,
// poison rule, subscription restore, diagnosis and status are the Client's and shared by all versions.
//
// A wire is made connected (CONNACK received) by its connect function and is dead once done is
// closed. Inbound PUBLISHes go to the Client's onPublish from the wire's reader goroutine; a QoS 1 one
// is PUBACKed after onPublish (which calls Config.OnMessage) returned.
type wire interface {
	// publish writes m's PUBLISH (QoS 0 or 1; expiry: its Message Expiry Interval in seconds, 0 =
	// none, ignored by 3.x). Sender goroutine only. For QoS 1 it returns the channel that receives the
	// outcome once: an MQTT 5 style PUBACK (a 3.x PUBACK has reason code 0), or an empty packet when
	// the connection ended first; nil means nothing was sent.
	publish(m Message, expiry uint32) (<-chan packets.ControlPacket, error)
	// subscribe sends SUBSCRIBE and returns the SUBACK's code per filter (>= 0x80: refused).
	subscribe(ctx context.Context, subs []Subscription) ([]byte, error)
	// unsubscribe sends UNSUBSCRIBE and waits for UNSUBACK; an error wrapping ErrRefused is a refusal.
	unsubscribe(ctx context.Context, filters []string) error
	// disconnect sends DISCONNECT (code: MQTT 5 reason code; 3.x has none) and waits for the end.
	disconnect(code byte)
	// done is closed once the session is over and its goroutines have stopped.
	done() <-chan struct{}
	// brokerDisconnect is the broker's DISCONNECT packet as an error (MQTT 5 only), or nil.
	brokerDisconnect() error
}

// connInfo is what a CONNACK told.
type connInfo struct {
	version        Protocol
	receiveMax     uint16 // the broker's Receive Maximum (65535 when absent); 0 for 3.x, which has none
	maxPacket      uint32 // the broker's Maximum Packet Size; 0 = none announced
	maxQoS         byte   // the broker's Maximum QoS (2 when absent, and for 3.x)
	retainOK       bool   // the broker's Retain Available (true when absent, and for 3.x)
	sessionPresent bool
}

// link is one live connection: the WebSocket, its keepalive pinger and the session over them.
type link struct {
	wire
	ws     *wsConn
	pinger *keepalivePinger
	info   connInfo
}

// errConnectionGone: the connection ended before the packet could be sent or answered.
var errConnectionGone = errors.New("connection closed")

// pubWriter encodes the sender's PUBLISHes into a reused buffer and writes each as one packet under the
// connection's lock, as paho writes its packets (the MQTT 5 bytes are the same as
// packets.Publish.WriteTo's, see TestAppendPublishMatchesPaho). Writing them here rather than through
// paho's PublishWithOptions saves, per message, paho's conversion of the message, a context with a
// timer, a response channel nobody reads and the encoding through net.Buffers: most of the sender's
// allocations. Used by the sender goroutine only.
type pubWriter struct {
	conn   *wsConn
	pinger *keepalivePinger
	v5     bool
	buf    []byte
}

// write writes m's PUBLISH; packetID is 0 for QoS 0.
func (w *pubWriter) write(m Message, packetID uint16, expiry uint32) error {
	w.buf = appendPublish(w.buf[:0], m, packetID, expiry, w.v5)
	w.conn.Lock()
	_, err := w.conn.Write(w.buf)
	w.conn.Unlock()
	if cap(w.buf) > 64<<10 {
		w.buf = nil // do not keep a large message's buffer
	}
	if err == nil {
		w.pinger.PacketSent()
	}
	return err
}

// appendPublish appends the PUBLISH packet of m [MQTT-3.3]: fixed header (QoS, RETAIN), Remaining
// Length, Topic Name, Packet Identifier (QoS > 0), for MQTT 5 Properties (Message Expiry Interval when
// expiry > 0), payload. 3.x has no properties: the same packet without them.
func appendPublish(b []byte, m Message, packetID uint16, expiry uint32, v5 bool) []byte {
	flags := m.QoS << 1
	if m.Retain {
		flags |= 1
	}
	b = append(b, packets.PUBLISH<<4|flags)
	b = appendVBI(b, publishRemaining(m, expiry, v5))
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	if m.QoS > 0 {
		b = binary.BigEndian.AppendUint16(b, packetID)
	}
	switch {
	case !v5:
	case expiry > 0:
		b = append(b, 5, packets.PropMessageExpiry)
		b = binary.BigEndian.AppendUint32(b, expiry)
	default:
		b = append(b, 0)
	}
	return append(b, m.Payload...)
}

// appendVBI appends n as a Variable Byte Integer [MQTT-1.5.5].
func appendVBI(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func vbiLen(n int) int {
	l := 1
	for ; n >= 128; n /= 128 {
		l++
	}
	return l
}

// publishRemaining is the Remaining Length of m's PUBLISH as the sender builds it (QoS 1 packet
// identifier included; for MQTT 5 the property length and Message Expiry, its only property).
func publishRemaining(m Message, expiry uint32, v5 bool) int {
	rem := 2 + len(m.Topic) + len(m.Payload)
	if v5 {
		rem++
		if expiry > 0 {
			rem += 5
		}
	}
	if m.QoS > 0 {
		rem += 2
	}
	return rem
}

// publishSize is the encoded size of m's PUBLISH packet as the sender builds it.
func publishSize(m Message, expiry uint32, v5 bool) int {
	rem := publishRemaining(m, expiry, v5)
	return 1 + vbiLen(rem) + rem
}
