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
//   - SetDelay: each chunk is written d after it was read, pipelined: a link with one-way
//     latency d and no bandwidth limit of its own (up to 64 chunks of 32 KiB in flight per
//     direction). Both sockets have TCP_NODELAY, so the proxy adds no delay of its own.
//
// Concurrency: all methods are safe for concurrent use. Every goroutine the proxy
// starts (one accept loop, one dialer and two copiers per connection, each copier a reader and a writer) is owned by
// the Proxy; Close stops and waits for all of them.
package netproxy
