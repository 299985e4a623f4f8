// Package agent wires edge-agent together: it opens the durable queue, runs the MQTT transport that
// drains it, and serves the local HTTP/1.1 API on a Unix socket through which local programs publish
// and subscribe.
//
// Ownership and concurrency: Run owns every goroutine it starts (the transport, the HTTP server, the
// subscriber hub) and waits for all of them before it returns. Shutdown order is fixed so that nothing
// acknowledged is lost: stop accepting API requests and end subscriber streams, let in-flight API
// requests finish (their messages are already fsync'd before they are answered), stop the transport
// (it waits briefly for outstanding PUBACKs), then close the queue, which flushes acknowledgements.
package agent
