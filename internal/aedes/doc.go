// Package aedes runs a real Aedes 1.x broker (Node.js) for tests: a broker that
// speaks only MQTT 3.1.1 and 3.1. It answers an MQTT 5 CONNECT with a 3.1.1-style
// CONNACK, return code 1 (unacceptable protocol version), and closes.
//
// It is test support only: production code must never import it. Start launches
// node with broker.mjs (beside this file) on free loopback ports: plain MQTT on
// TCPAddr and MQTT over WebSocket at WSURL (ws://127.0.0.1:PORT/mqtt, subprotocols
// "mqtt" and "mqttv3.1"). Sessions and retained messages live in memory: they
// survive a network cut but not Stop, Kill or Restart.
//
// The npm modules are installed next to this file (node_modules, not committed)
// from the committed package.json and package-lock.json by scripts/test.sh:
//
//	npm ci --no-audit --no-fund --prefix internal/aedes
//
// When node or the modules are missing a test fails (never skips) and says that.
//
// Concurrency: the methods of Broker are safe to call from several goroutines.
// The process is stopped by a t.Cleanup registered by Start; it runs in its own
// process group and gets SIGKILL if the test binary dies (internal/testproc), so
// packages using it can run testproc.VerifyTestMain.
package aedes
