// Package transport carries messages between a Source and an MQTT broker over WebSocket (ws:// or
// wss://), in MQTT 5 (paho.golang's client), 3.1.1 or 3.1 (paho.mqtt.golang's packet codec under a
// session of our own), with gorilla/websocket.
//
// # Versions
//
// One state machine serves every version: the reconnect loop, backoff, keepalive pinger, in-flight
// window, ordered pipeline, poison rule, subscription restore and status are shared; only the wire
// differs (the wire interface, wire.go: wire5.go and wire3.go). Config.Protocol picks the version, or
// ProtocolAuto negotiates it: MQTT 5 first, then 3.1.1, then 3.1, each tried at once while the broker
// refuses the version (CONNACK 0x84, a 3.x CONNACK return code 1, or a close before any CONNACK unless
// Config.ClosedIsNotVersion); the one that worked is kept for the life of the Client (Status.Protocol,
// the "mqtt connected … protocol=" log line). WebSocket subprotocol "mqtt" for 5 and 3.1.1, "mqttv3.1"
// for 3.1. What 3.x lacks is handled here: no PUBACK reason codes (a broker refuses a message by
// disconnecting; the poison rule dead-letters it), no Message Expiry on the wire (an expired message is
// never sent), no Receive Maximum (the window is Config.MaxInflight3), no Maximum Packet Size
// (Config.MaxPacketSize bounds both directions), Clean Session instead of Session Expiry.
//
// # Delivery
//
// The durable session for what we send is the caller's Source, not the broker: every connection's
// sender asks the Source for messages from after=0, so everything not yet acknowledged is sent again
// (at-least-once), with fresh packet identifiers and without DUP — also when the broker resumed a
// persistent session (Config.SessionExpiry) that still remembers our unacknowledged QoS 1 PUBLISHes:
// the spec expects us to resend those with their old identifiers; a resend with new ones is a new
// message to the broker, so the subscriber may get it twice (at-least-once, as after any reconnect).
// For QoS 1 the broker keeps no state per identifier of ours, so a new identifier is never confused
// with an old one (only QoS 2, which we never send, would). Inbound, a persistent session makes the
// broker hold QoS 1 messages for our subscriptions while we are away and send them after the next
// CONNACK (with DUP when it had sent them before): they are handed to OnMessage and PUBACKed like any
// other. Subscriptions are sent again on every connection, session present or not. An Unsubscribe
// made while offline is not remembered, so the broker's session keeps that filter (and delivers its
// messages, which match no local subscriber) until the session expires or the filter is subscribed
// and dropped again.
//
// Messages go on the wire strictly in Seq order while up to
// W = min(Config.MaxInflight, broker Receive Maximum) (MQTT 3.x: Config.MaxInflight3) QoS 1 publishes are unacknowledged (pipelining,
// see pipeline in sender.go). Source.Ack is called only after a successful PUBACK (QoS 1) or once the
// bytes were written to the connection (QoS 0); Source.Quarantine on a PUBACK reason code >= 0x80 or a message
// that can never be published; Source.Expire for a message whose Expires passed before it was sent. A refused message never blocks the ones behind it.
//
// # Poison messages
//
// A message that makes the broker hang up each time it is sent would be resent after every reconnect
// and block everything behind it. With Config.PoisonAfter = N > 0, a connection the broker ended (a
// DISCONNECT, a WebSocket close frame, the end of the stream — not a keepalive timeout, a reset, a write
// failure or our own shutdown) with QoS 1 publishes in flight, no PUBACK at all, and the oldest of them
// the first message written on it, notes that message; noted N connections in a row, it goes to
// Source.Quarantine with an error wrapping ErrPoison ("the broker closed the connection each time this
// message was sent (N times in a row): <last close reason>"), counted in Status.Poisoned. See poison.go.
//
// # Connections
//
// Run dials, connects and reconnects forever with full-jitter backoff (reset after StableAfter of
// uptime). Config.Endpoint, when set, is called before every attempt (fresh presigned URLs). A dead link
// is found by MQTT keepalive (keepalivePinger, pinger.go: at most Keepalive after the last packet
// received, so within 1.5×Keepalive of the failure) and by WebSocket write deadlines. URLs in logs and
// Status never contain a query string or user info; the password is never logged.
//
// # Subscriptions and incoming messages
//
// Config.Subscriptions are always on; Subscribe/Unsubscribe add and drop ref-counted dynamic filters.
// All of them are subscribed again right after every CONNACK, before publishing resumes. Incoming
// PUBLISHes are handed to Config.OnMessage on the wire's reader goroutine, one at a time: the transport
// keeps no queue of its own, so a message is buffered once, by the consumer (the agent's hub, bounded
// per local subscriber and overall). OnMessage must not block — while it runs nothing else is read
// (PUBACKs for our publishes, PINGRESP) — and a QoS 1 message is PUBACKed after it returned. The one
// inbound drop left in the transport is a PUBLISH over MaxPacketSize (below), counted in
// Status.DroppedIncomingTooLarge (DroppedIncoming is the total).
//
// # Inbound bound
//
// CONNECT announces Config.MaxPacketSize (default 136 KiB) as Maximum Packet Size (MQTT 5), and every inbound
// byte passes a guard (inboundGuard, inbound.go) that reads each fixed header before paho does: paho
// would allocate a packet's whole remaining length at once (up to 256 MiB from a 5-byte header). An
// oversized PUBLISH is drained through a small buffer without being kept, answered (QoS 1: PUBACK 0x97;
// QoS 2: PUBREC 0x80), counted (Status.InboundTooLarge) and logged, rate-limited ("broker sent a N-byte
// PUBLISH on topic T, over broker.max_packet_size M: discarded"); the connection stays up, so a retained
// oversized message cannot disconnect the client on every subscribe. Any other oversized packet, or a
// malformed remaining length, ends the connection (ErrPacketTooLarge; DISCONNECT 0x95 or 0x81).
//
// # Concurrency
//
// All Client methods are safe for concurrent use; Run may be active once at a time. Run owns every
// goroutine it starts (per connection: sender, its reader, waiter, and the wire's: paho's
// own for MQTT 5, a reader and the pinger for 3.x) and waits for all of them before returning. The life
// of one connection (open, attach, serve, detach, teardown) is in lifecycle.go. OnMessage is called from one goroutine at a time (the reader). Status is a cheap,
// consistent snapshot. Source methods are called from the reader, sender and waiter goroutines concurrently
// (Next from the sender's reader, one call at a time, reading one batch ahead; Ack/Expire/Quarantine from the sender
// for QoS 0, expired and invalid messages, and from the waiter for QoS 1).
package transport
