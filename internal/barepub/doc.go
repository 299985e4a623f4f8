// Package barepub is the reference publisher of the drain benchmarks: a bare paho.golang (autopaho)
// MQTT 5 client over WebSocket that publishes pre-generated QoS 1 messages with at most Window
// unacknowledged. It has no queue, no disk and no pipeline of its own, so its rate is what the path
// (broker, WebSocket, link) allows for that window; the agent's drain is measured against it.
//
// Tests and benchmarks only: never imported by the agent.
package barepub
