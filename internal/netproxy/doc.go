// Package netproxy is a TCP proxy for fault injection in tests: put it between a
// client and a real server and cut, blackhole or slow down the link on demand.
//
// It is test support only: production code must never import it.
//
// Modes (switchable at any time, they apply to current and new connections):
//   - normal: bytes are forwarded both ways; a half-close (FIN) is passed on.
//   - Cut: every current connection is reset (RST on both sides, via
//     SetLinger(0)) and new connections are accepted and reset at once, until
//     Restore. Models a broker crash or a NAT table flush.
//   - Blackhole: connections stay open but no byte moves either way and no FIN
//     is sent, until Restore; then the held bytes flow on. Models a network
//     partition that heals (TCP would retransmit): only keepalives and timeouts
//     can detect it.
//   - SetDelay: each chunk waits d before it is written (a slow, high-latency link).
//
// Concurrency: all methods are safe for concurrent use. Every goroutine the proxy
// starts (one accept loop, one dialer and two copiers per connection) is owned by
// the Proxy; Close stops and waits for all of them.
package netproxy
