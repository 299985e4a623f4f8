// Package mosquitto runs real Eclipse Mosquitto processes for tests.
//
// It is test support only: production code must never import it. Start launches a
// private broker (plain MQTT and MQTT-over-WebSocket listeners, optionally a TLS
// WebSocket listener) on free loopback ports with its configuration and log in
// t.TempDir(); Subscribe runs a mosquitto_sub checker process that records every
// message it receives, binary-safe; Publish sends one message with mosquitto_pub.
//
// The Debian packages mosquitto and mosquitto-clients must be installed. When they
// are missing the test fails (never skips) and says how to install them;
// scripts/test.sh installs them when run as root.
//
// Concurrency: the methods of Broker and Sub are safe to call from several
// goroutines. Every process and goroutine this package starts is stopped and
// waited for by a t.Cleanup registered when it is created, so packages using it
// can run goleak.VerifyTestMain. On Linux the child processes also get SIGKILL if
// the test binary dies (Pdeathsig), so a crashed test leaves no broker behind.
package mosquitto
