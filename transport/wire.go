package transport

import (
	"context"
	"errors"

	"github.com/eclipse/paho.golang/packets"
)

// wire is one connected MQTT session in one protocol version: the only part of the transport that
// differs between MQTT 5 (wire5, paho.golang) and MQTT 3.1.1 / 3.1 (wire3, paho.mqtt.golang's packet
// codec under our own session). The reconnect loop, backoff, keepalive, window, ordered pipeline,
// poison rule, subscription restore, diagnosis and status are the Client's and shared by all versions.
//
// A wire is made connected (CONNACK received) by its dial function and is dead once done is closed.
// Inbound PUBLISHes go to the Client's onPublish from the wire's reader goroutine; a QoS 1 one is
// PUBACKed after onPublish returned (handed off or dropped and counted).
type wire interface {
	// publish writes one PUBLISH (QoS 0 or 1). For QoS 1 it returns the channel that receives the
	// outcome once: an MQTT 5 style PUBACK (a 3.x PUBACK has reason code 0), or an empty packet when
	// the connection ended first. A nil channel means nothing was sent. An error wrapping
	// errUnsendable means the message can never be sent as given.
	publish(ctx context.Context, pub outPublish) (<-chan packets.ControlPacket, error)
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

// outPublish is one PUBLISH as the sender builds it.
type outPublish struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	expiry  uint32 // Message Expiry Interval in seconds, 0 = none; MQTT 5 only (3.x expires locally)
}

// connInfo is what a CONNACK told.
type connInfo struct {
	version        Protocol
	receiveMax     uint16 // the broker's Receive Maximum; 65535 when absent and for 3.x
	maxPacket      uint32 // the broker's Maximum Packet Size; 0 = none announced
	sessionPresent bool
}

// link is one live connection: the WebSocket, its keepalive pinger and the session over them.
type link struct {
	wire
	ws     *wsConn
	pinger *keepalivePinger
	info   connInfo
}

var (
	// errUnsendable: the wire refused a message's arguments; it can never be sent as given.
	errUnsendable = errors.New("invalid argument")
	// errConnectionGone: the connection ended before the packet could be sent or answered.
	errConnectionGone = errors.New("connection closed")
)

// publishSize is the encoded size of a PUBLISH as the sender builds it: QoS 1 packet id included, and
// for MQTT 5 the property length and Message Expiry, its only property.
func publishSize(pub outPublish, v5 bool) int {
	rem := 2 + len(pub.topic) + len(pub.payload)
	if v5 {
		rem++ // property length
		if pub.expiry > 0 {
			rem += 5
		}
	}
	if pub.qos > 0 {
		rem += 2
	}
	vbi := 1
	for n := rem; n >= 128; n /= 128 {
		vbi++
	}
	return 1 + vbi + rem
}
