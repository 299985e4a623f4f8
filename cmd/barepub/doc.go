// Command barepub is the anchor of scripts/bench.sh's drain figures: a bare
// paho.golang MQTT 5 QoS 1 publisher over WebSocket, with no queue, no disk and
// no agent code, that sends N messages held in memory with at most W
// unacknowledged at once. It is the fastest a paho.golang publisher with the
// same window can go on the same path, so the agent's drain rate is compared
// with it. It is a separate main package and is never linked into the
// edge-agent binary (cmd/agent's import-graph test keeps it that way).
//
//	barepub -url ws://127.0.0.1:PORT/mqtt -n N -topic T -size B -tag TAG [-window W]
//
// Payloads are "<tag>-<i, 8 digits>-" padded with '.' to exactly B bytes, as
// benchclient lines makes them, so the same checker counts both. W = 0 (the
// default) uses the broker's Receive Maximum from its CONNACK, which is the
// window the agent uses when broker.max_inflight is at least that large.
//
// It prints shell assignments: connack_ns (CONNACK received), done_ns (the
// last PUBACK), window, receive_maximum. Every run is bounded by -timeout; any
// failed publish or a PUBACK reason code >= 0x80 exits 1.
//
// Concurrency: W worker goroutines each publish one message at a time
// (PublishMethod_Blocking); main waits for all of them, then disconnects and
// waits for the paho client to stop.
package main
