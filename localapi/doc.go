// Package localapi is edge-agent's local API: HTTP/1.1 on a Unix socket (SPEC "Local API"), in
// front of a Backend that the agent implements, and the one Client that speaks it (the CLI, the
// agent's health check, the bench client).
//
// The server holds the route table (routes in server.go: each endpoint's method, path and
// permission), the wire types (types.go, declared once for server and clients), the caller's
// identity (SO_PEERCRED and groups, read once per connection), and the API's bounds: the body
// budget (budget.go), the connection limit (connlimit.go) and the per-request limits. It never
// talks to the broker: a publish goes socket → localapi → Backend.Store → queue.
//
// Concurrency: New, Listen, Serve and Shutdown are called once each, in that order, by the agent's
// Run, which owns the goroutine that runs Serve. Shutdown ends subscriber streams and waits for
// requests in progress. A Client is safe for concurrent use.
package localapi
