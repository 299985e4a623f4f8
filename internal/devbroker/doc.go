// Package devbroker runs an in-process MQTT 5 broker (mochi-mqtt) for development and tests: a
// WebSocket listener serving /mqtt and, optionally, a plain TCP listener, with allow-all authentication
// and no persistence. It is never linked into the agent binary.
//
// Start returns once the listeners are bound (so "127.0.0.1:0" works and Addr/URL report the real
// port). Close stops the listeners, disconnects clients and waits for every goroutine the broker
// started. A Broker's accessors are safe for concurrent use; Close is safe to call more than once.
package devbroker
