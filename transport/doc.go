// Package transport carries messages between a Source and an MQTT 5 broker over WebSocket (ws:// or
// wss://, subprotocol "mqtt"), using paho.golang's client and gorilla/websocket.
//
// # Delivery
//
// The durable session is the caller's Source, not the broker: every connection starts with CleanStart
// and its sender asks the Source for messages from after=0, so everything not yet acknowledged is sent
// again (at-least-once). Messages go on the wire strictly in Seq order while up to
// W = min(Config.MaxInflight, broker Receive Maximum) QoS 1 publishes are unacknowledged (pipelining,
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
// PUBLISHes go through a bounded channel (Config.IncomingBuffer) to one dispatcher goroutine that calls
// Config.OnMessage, so a slow consumer never stalls paho's reader (and with it PUBACKs and keepalive).
// The channel is bounded in messages (Config.IncomingBuffer) and in bytes (Config.IncomingBytes, topic +
// payload, counted until OnMessage returns). A message that does not fit is dropped and counted by reason
// (Status.DroppedIncomingFull, DroppedIncomingBytes, DroppedIncomingTooLarge; DroppedIncoming is the
// total): paho has already acknowledged it to the broker, so it is lost — size the buffers, keep
// OnMessage fast.
//
// # Inbound bound
//
// CONNECT announces Config.MaxPacketSize (default 136 KiB) as Maximum Packet Size, and every inbound
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
// goroutine it starts (dispatcher; per connection: sender, its reader, waiter and paho's own) and waits for
// all of them before returning. OnMessage is called from one goroutine at a time. Status is a cheap,
// consistent snapshot. Source methods are called from the reader, sender and waiter goroutines concurrently
// (Next from the sender's reader, one call at a time, reading one batch ahead; Ack/Expire/Quarantine from the sender
// for QoS 0, expired and invalid messages, and from the waiter for QoS 1).
package transport
