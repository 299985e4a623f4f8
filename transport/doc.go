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
// bytes were written to the connection (QoS 0); Source.Reject on a PUBACK reason code >= 0x80, an expired
// message, or a message that can never be published. A refused message never blocks the ones behind it.
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
// When the channel is full the message is dropped and counted in Status.DroppedIncoming: paho has
// already acknowledged it to the broker, so it is lost — size the buffer, keep OnMessage fast.
//
// # Concurrency
//
// All Client methods are safe for concurrent use; Run may be active once at a time. Run owns every
// goroutine it starts (dispatcher; per connection: sender, waiter and paho's own) and waits for all of
// them before returning. OnMessage is called from one goroutine at a time. Status is a cheap, consistent
// snapshot. Source methods are called from the sender and waiter goroutines concurrently (Next from the
// sender; Ack/Reject from the sender for QoS 0, expired and invalid messages, and from the waiter for QoS 1).
package transport
