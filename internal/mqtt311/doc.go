// Package mqtt311 is an MQTT 3.1.1 (or 3.1) checker client for tests, built on
// github.com/eclipse/paho.mqtt.golang: Subscribe records every message a filter
// receives, in arrival order; Connect and Publish send messages at QoS 0, 1 or 2
// and wait for the broker's acknowledgement.
//
// It is test support only: production code must never import it. An address is
// either "127.0.0.1:PORT" (plain MQTT over TCP) or a URL paho dials as is
// ("ws://127.0.0.1:PORT/mqtt", offering the WebSocket subprotocol "mqtt").
//
// Concurrency: the methods of Sub and Client are safe to call from several
// goroutines. paho's goroutines are stopped by Close, which a t.Cleanup calls, so
// packages using it can run goleak.
package mqtt311
