// Package rabbitmq runs a real RabbitMQ 3.10 (Debian's rabbitmq-server) with the
// rabbitmq_web_mqtt plugin for tests: a broker that speaks only MQTT 3.1.1 and
// 3.1 (its MQTT 5 support came in 3.13).
//
// It is test support only: production code must never import it. Start launches
// a private node — its own node name, Erlang distribution port, epmd (on its own
// port, a child of the test too), data, log and config in a temporary directory —
// never the system service. Plain MQTT is on TCPAddr, MQTT over WebSocket at WSURL
// (ws://127.0.0.1:PORT/ws, the plugin's default path). Anonymous MQTT clients are
// mapped to the test user (User), which may also be given explicitly.
//
// RabbitMQ takes seconds to boot (about 10–15 s on a loaded 2-core machine), so a
// test package that does not stop or kill the broker should share one: Shared
// starts it on first use and CloseShared, called from TestMain (e.g.
// testproc.VerifyTestMain(m, rabbitmq.CloseShared)), stops it.
//
// Sessions: RabbitMQ keeps a clean-session-false client's subscriptions and
// queued QoS 1 messages in durable queues, so they survive a Restart (after Stop
// or Kill), like a production broker.
//
// Debian's rabbitmq-server package must be installed; scripts/test.sh installs it
// (apt-get install -y rabbitmq-server) when missing. When it is missing a test
// fails (never skips) and says that.
//
// Concurrency: the methods of Broker are safe to call from several goroutines.
// Every process runs under internal/testproc: its own process group, SIGKILL when
// the test binary dies, found by testproc.Leftovers if it survives.
package rabbitmq
