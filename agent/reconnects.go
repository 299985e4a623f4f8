package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/transport"
)

// Reconnect reasons: the label values of edge_agent_reconnects_total and the keys of
// /v1/status "reconnects". A fixed set, so the metric's series are bounded.
const (
	reasonEndpoint      = "endpoint"             // the broker URL could not be made (credentials, Cognito)
	reasonUpgrade       = "upgrade_refused"      // the WebSocket upgrade was answered with an HTTP error
	reasonRefused       = "connack_refused"      // CONNACK with a reason code >= 0x80
	reasonClosedConnect = "closed_after_connect" // the broker hung up before CONNACK
	reasonServer        = "server_disconnect"    // the broker ended the session (DISCONNECT, close frame)
	reasonKeepalive     = "keepalive"            // no PINGRESP in time: a dead link
	reasonTooLarge      = "packet_too_large"     // an inbound packet over broker.max_packet_size
	reasonTimeout       = "timeout"              // dialling or CONNACK took too long
	reasonNetwork       = "network"              // DNS, refused or reset TCP, TLS
	reasonOther         = "other"                // anything else, a clean close included
)

var reconnectReasons = []string{reasonEndpoint, reasonUpgrade, reasonRefused, reasonClosedConnect,
	reasonServer, reasonKeepalive, reasonTooLarge, reasonTimeout, reasonNetwork, reasonOther}

// reconnectReason sorts a failed attempt or a lost connection (transport.Config.OnConnectError)
// into one of the reasons above.
func reconnectReason(err error) string {
	var he *transport.HandshakeError
	var ne net.Error
	switch {
	case errors.Is(err, transport.ErrEndpoint):
		return reasonEndpoint
	case errors.As(err, &he):
		return reasonUpgrade
	case errors.Is(err, transport.ErrRefused):
		return reasonRefused
	case errors.Is(err, transport.ErrClosedAfterConnect):
		return reasonClosedConnect
	case errors.Is(err, transport.ErrServerDisconnect):
		return reasonServer
	case errors.Is(err, transport.ErrKeepalive):
		return reasonKeepalive
	case errors.Is(err, transport.ErrPacketTooLarge):
		return reasonTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	case errors.As(err, new(*net.OpError)), errors.As(err, new(*net.DNSError)):
		return reasonNetwork
	default:
		return reasonOther
	}
}

// reconnectCounts counts failed attempts and lost connections by reason. Safe for concurrent use.
type reconnectCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (c *reconnectCounts) count(err error) {
	r := reconnectReason(err)
	c.mu.Lock()
	if c.n == nil {
		c.n = make(map[string]uint64, len(reconnectReasons))
	}
	c.n[r]++
	c.mu.Unlock()
}

// snapshot has every reason, those never seen at 0, so that each series exists from the start.
func (c *reconnectCounts) snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(reconnectReasons))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range reconnectReasons {
		out[r] = c.n[r]
	}
	return out
}

// lastDelivery remembers when the broker last acknowledged a message (Unix nanoseconds; 0 = never).
type lastDelivery struct{ at atomic.Int64 }

func (l *lastDelivery) mark() { l.at.Store(time.Now().UnixNano()) }

func (l *lastDelivery) get() time.Time {
	if n := l.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
