// Package agent wires edge-agent together: it opens the durable queue store, runs one MQTT transport
// per configured broker, each draining its own lane of the store, and serves the local HTTP/1.1 API on
// a Unix socket through which local programs publish and subscribe.
//
// Brokers: each broker ([broker], or each [[broker]]) is a link (broker.go) with its own lane, transport,
// AWS IoT provider, subscriptions, diagnosis and counters; its log records carry broker=NAME. A publish
// goes to every broker whose publish filters take its topic, or to the one broker a request names
// (routes.go); it is stored once for all its targets, in one commit. Links share nothing on the send
// path but the store's committer, so a broker that is down, slow or refusing never delays another.
// Local subscriber streams are served by one hub (hub.go) fed by every broker's transport.
//
// Ownership and concurrency: Run owns every goroutine it starts (the transports, the credential
// refreshers, the HTTP server, the subscriber hub) and waits for all of them before it returns.
// Shutdown order is fixed so that nothing acknowledged is lost: stop accepting API requests and end
// subscriber streams, let in-flight API requests finish (their messages are already fsync'd before
// they are answered), stop the transports (each waits briefly for outstanding PUBACKs), then close
// the queue store, which flushes acknowledgements.
package agent
