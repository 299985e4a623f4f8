// Package hostilebroker is an in-process MQTT 5 over WebSocket broker that misbehaves on demand, for
// tests of the transport and of the real agent binary: it announces a 268,435,455-byte packet and then
// sends nothing (or a trickle), streams a huge retained message after every SUBSCRIBE (from a generator:
// the broker itself never holds it), and hangs up whenever a received PUBLISH matches a predicate (after
// a DISCONNECT 0x81, a WebSocket close frame, or just the end of the TCP stream).
//
// Otherwise it behaves like a small, plain broker: it answers CONNECT (CONNACK, optionally with a
// Receive Maximum), SUBSCRIBE, UNSUBSCRIBE, PINGREQ and QoS 1/2 publishes, routes publishes to matching
// subscriptions (its own publisher included; no retained store, no sessions), and records what it got:
// each CONNECT's Maximum Packet Size, every PUBLISH in arrival order, every PUBACK/PUBREC a client sent.
//
// Only what a hostile test needs is implemented: no authentication, no TLS, no topic aliases, no
// shared subscriptions, no will messages, no persistence. It imports no testing package, so a test
// helper binary may use it as well as a test.
//
// Concurrency: every method is safe for concurrent use. Each connection has one reader goroutine (the
// HTTP handler) plus at most a streaming and a trickling goroutine; Close stops the listener, closes
// every connection and waits for every goroutine the broker started.
package hostilebroker
