// Package mqttprobe sends one hand-built MQTT CONNECT (3.1, 3.1.1 or 5) to a
// server, over TCP or WebSocket, and records exactly what the server answers: the
// bytes of its first packet, or how the connection ended (EOF, a WebSocket close
// code, a refused upgrade). Tests use it to pin down how brokers that speak only
// some MQTT versions refuse the others, and broker helpers use it as a readiness
// check.
//
// It is test support only: production code must never import it. Its functions
// start no goroutines and close every connection they open before returning.
package mqttprobe
