// Package wsproxy is a WebSocket endpoint for tests that demands given
// subprotocols — by default only "mqttv3.1", like servers built for Paho JS with
// mqttVersion 3 — and relays each accepted connection to a plain TCP MQTT broker
// (Mosquitto speaks 3.1, protocol name "MQIsdp", level 3). An upgrade that offers
// none of them gets 400 Bad Request. It records the protocol name and level of
// each CONNECT it relays, so a test can check what a client spoke.
//
// It is test support only: production code must never import it.
//
// Concurrency: Proxy's methods are safe to call from several goroutines. Each
// relayed connection runs two goroutines; Close (registered with t.Cleanup by
// Start) closes every connection and waits for them.
package wsproxy
