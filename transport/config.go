package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/topic"
)

// Message is one outgoing message handed to the transport by its Source.
type Message struct {
	Seq     uint64 // strictly increasing; the transport publishes in Seq order
	Topic   string
	Payload []byte
	QoS     byte // 0 or 1
	Retain  bool
	Expires time.Time // zero = never; once passed the message is passed to Source.Expire instead of sent
}

// Source feeds the transport. Every message returned by Next ends in exactly one of Ack, Expire or
// Quarantine, or is returned again by a later Next (after a reconnect the transport asks again from
// after=0, so a Source must keep returning every message that has been none of these). Ack, Expire
// and Quarantine are never called while the seq is in flight; a Source ignores any of them for a seq
// it no longer holds.
type Source interface {
	// Next blocks until at least one message with Seq > after is available (or ctx is done) and returns up
	// to max of them in Seq order.
	Next(ctx context.Context, after uint64, max int) ([]Message, error)
	// Ack: delivered. The broker acknowledged a QoS 1 message with PUBACK success, or a QoS 0 message
	// was written to the connection. It may be called again for the same seq after a reconnect.
	Ack(seq uint64)
	// Expire: the message's Expires time passed before it could be sent; it was not sent.
	Expire(seq uint64)
	// Quarantine: the message can never be delivered and must be set aside so it cannot block the ones
	// behind it. reason wraps ErrRefused (PUBACK reason code >= 0x80), ErrInvalidMessage (it cannot be
	// published at all) or ErrPoison (the broker hung up each time it was sent, see Config.PoisonAfter).
	Quarantine(seq uint64, reason error)
}

// Received is a PUBLISH from the broker, handed to Config.OnMessage.
type Received struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Subscription is a topic filter and the maximum QoS requested for it.
type Subscription struct {
	Filter string
	QoS    byte
}

// Config configures a Client. The zero value of every optional field selects the documented default.
type Config struct {
	URL string // ws:// or wss://…/mqtt; required unless Endpoint is set
	// Endpoint, when set, is called before EVERY connection attempt and its URL and header override URL
	// (this is where an AWS SigV4 presigned URL is made, so each attempt carries fresh credentials).
	Endpoint func(ctx context.Context) (string, http.Header, error)
	ClientID string // required
	Username string // sent in CONNECT when non-empty
	Password []byte // sent in CONNECT when non-nil; never logged
	// TLS is used for wss://. nil = system roots with full verification. InsecureSkipVerify is refused.
	TLS           *tls.Config
	Keepalive     time.Duration  // default 60s; whole seconds, 1s..65535s
	Subscriptions []Subscription // always-on, restored after every reconnect
	// Backoff returns the wait before reconnect attempt n (n counts consecutive failures from 0).
	// Default: FullJitter(time.Second, 2*time.Minute).
	Backoff     func(attempt int) time.Duration
	StableAfter time.Duration // a connection up this long resets the attempt counter (default 30s)
	// MaxInflight bounds unacknowledged QoS 1 publishes (default 64). The window actually used on an
	// MQTT 5 connection is min(MaxInflight, the broker's Receive Maximum).
	MaxInflight int
	// MaxInflight3 is the window on an MQTT 3.1.1 or 3.1 connection, which has no Receive Maximum
	// (default 20).
	MaxInflight3 int

	// Protocol is the MQTT version: Protocol5 (the default), Protocol311, Protocol31, or ProtocolAuto:
	// try 5, and while the broker refuses the version (an MQTT 5 CONNACK 0x84, a 3.x CONNACK return code
	// 1, or a close before any CONNACK) try 3.1.1, then 3.1, at once; the first that works is kept for
	// the life of the Client (Status.Protocol). WebSocket subprotocol "mqtt", "mqttv3.1" for 3.1.
	Protocol Protocol
	// ClosedIsNotVersion: a connection closed before any CONNACK is never read as a refused version (no
	// fallback under ProtocolAuto, no version hint in the error). AWS IoT closes it for a missing policy.
	ClosedIsNotVersion bool
	// SessionExpiry > 0 asks for a persistent session: MQTT 5 CleanStart=0 with this Session Expiry
	// Interval (whole seconds), 3.x Clean Session=0 (the broker decides how long it keeps it). The broker
	// then holds QoS 1 messages for our subscriptions while we are away and delivers them on reconnect.
	// 0 = a clean session on every connection. Outbound, the Source stays the only record (see doc.go).
	SessionExpiry time.Duration
	// OnMessage receives broker PUBLISHes, one at a time, on the connection's reader goroutine: the
	// transport keeps no queue of its own. It must not block: until it returns nothing else is read
	// from the broker (no PUBACK for our publishes, no PINGRESP). A QoS 1 message is acknowledged to
	// the broker after it returns. Received.Payload is the message's own allocation, never reused by
	// the transport, so OnMessage may keep it without copying.
	OnMessage func(Received)
	Logger    *slog.Logger // default: discard

	// Added beyond the package contract:
	ConnectTimeout time.Duration // dial + WebSocket handshake + CONNACK bound (default 30s)
	DrainTimeout   time.Duration // on shutdown, how long to wait for in-flight PUBACKs (default 2s)

	// MaxPacketSize is the largest MQTT packet accepted from the broker, fixed header included
	// (default 136 KiB = 139264: the AWS IoT payload limit plus room for topic and properties;
	// 256..268435460). It is announced in CONNECT as Maximum Packet Size, so a conforming broker never
	// sends more [MQTT-3.1.2-25]; it is also enforced on every inbound packet before anything is
	// allocated for it. An oversized PUBLISH is read through without being kept, answered (QoS 1: PUBACK
	// 0x97), counted (Status.InboundTooLarge, DroppedIncomingTooLarge) and logged: the connection stays
	// up, so a retained oversized message cannot disconnect the client on every subscribe. Any other
	// oversized packet ends the connection (ErrPacketTooLarge, DISCONNECT 0x95); Run reconnects.
	MaxPacketSize uint32

	// PoisonAfter turns on poison-message detection (0 = off). When a connection ends because the
	// broker hung up (a DISCONNECT packet, a WebSocket close frame or the end of the stream — not a
	// keepalive timeout, a reset, a write failure or our own shutdown) while QoS 1 messages were in
	// flight and nothing was acknowledged on that connection, the oldest of them is noted (if it was the
	// first message written on that connection: a QoS 0 message before it may be the culprit). When the same
	// message is noted PoisonAfter connections in a row, it is passed to Source.Quarantine with an error
	// wrapping ErrPoison, so the messages behind it can be delivered. A connection that ends any other
	// way, or that got any PUBACK, starts the count again.
	PoisonAfter int

	// OnConnectError, when set, is called from Run's goroutine with the reason of every failed
	// connection attempt and every lost connection, before the backoff wait (a *HandshakeError when the
	// WebSocket upgrade was refused; errors.Is(err, ErrClosedAfterConnect) when the broker hung up right
	// after CONNECT). It must not block. Diagnosis (AWS IoT hints) hooks in here.
	OnConnectError func(err error)
	// OnConnected, when set, is called from Run's goroutine after every successful CONNACK.
	OnConnected func()
	// MaxPublishRate bounds outgoing PUBLISH packets per second (0 = no limit), so that a backlog drains
	// within a broker's per-connection quota (AWS IoT: 100/s) instead of being throttled away.
	MaxPublishRate float64
	// MaxByteRate bounds outgoing publish bytes (topic + payload) per second (0 = no limit; AWS IoT:
	// 512 KiB/s per connection).
	MaxByteRate int64
	// MaxSubscriptions bounds the distinct filters subscribed at once (0 = no limit; AWS IoT: 50 per
	// connection). Subscribe beyond it fails with ErrTooManySubscriptions.
	MaxSubscriptions int
}

const (
	defaultKeepalive      = 60 * time.Second
	defaultStableAfter    = 30 * time.Second
	defaultMaxInflight    = 64
	defaultMaxInflight3   = 20
	defaultConnectTimeout = 30 * time.Second
	defaultDrainTimeout   = 2 * time.Second
	defaultMaxPacketSize  = 136 << 10 // 139264
	minMaxPacketSize      = 256
	maxMaxPacketSize      = 1 + 4 + 268435455 // fixed header + the largest remaining length [MQTT-1.5.5]
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("invalid transport config")

func (cfg *Config) applyDefaults() {
	if cfg.Keepalive == 0 {
		cfg.Keepalive = defaultKeepalive
	}
	if cfg.Backoff == nil {
		cfg.Backoff = FullJitter(time.Second, 2*time.Minute)
	}
	if cfg.StableAfter == 0 {
		cfg.StableAfter = defaultStableAfter
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = defaultMaxInflight
	}
	if cfg.MaxInflight3 == 0 {
		cfg.MaxInflight3 = defaultMaxInflight3
	}
	if cfg.Protocol == "" {
		cfg.Protocol = Protocol5
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = defaultDrainTimeout
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = defaultMaxPacketSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (cfg *Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	if cfg.Endpoint == nil {
		if cfg.URL == "" {
			return bad("URL is empty and no Endpoint func is set; give a ws:// or wss:// broker URL")
		}
		if _, err := parseBrokerURL(cfg.URL); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	switch {
	case cfg.ClientID == "":
		return bad("ClientID is empty; every MQTT connection needs a client id")
	case len(cfg.ClientID) > topic.MaxLen || !utf8.ValidString(cfg.ClientID):
		return bad("ClientID must be valid UTF-8 of at most %d bytes", topic.MaxLen)
	case cfg.TLS != nil && cfg.TLS.InsecureSkipVerify:
		return bad("TLS.InsecureSkipVerify is not allowed; add the broker's CA to TLS.RootCAs instead")
	case cfg.Keepalive < time.Second || cfg.Keepalive > 65535*time.Second:
		return bad("Keepalive %s is out of range; use 1s..65535s", cfg.Keepalive)
	case cfg.MaxInflight < 1 || cfg.MaxInflight > 65535:
		return bad("MaxInflight %d is out of range; use 1..65535", cfg.MaxInflight)
	case cfg.MaxInflight3 < 1 || cfg.MaxInflight3 > 65535:
		return bad("MaxInflight3 %d is out of range; use 1..65535", cfg.MaxInflight3)
	case !cfg.Protocol.valid():
		return bad("Protocol %q is not a version; use %q, %q, %q or %q", cfg.Protocol, ProtocolAuto, Protocol5, Protocol311, Protocol31)
	case cfg.SessionExpiry < 0:
		return bad("SessionExpiry %s is negative; 0 asks for a clean session", cfg.SessionExpiry)
	case cfg.StableAfter < 0 || cfg.ConnectTimeout < 0 || cfg.DrainTimeout < 0:
		return bad("StableAfter, ConnectTimeout and DrainTimeout must not be negative")
	case cfg.MaxPacketSize < minMaxPacketSize || cfg.MaxPacketSize > maxMaxPacketSize:
		return bad("MaxPacketSize %d is out of range; use %d..%d bytes", cfg.MaxPacketSize, minMaxPacketSize, maxMaxPacketSize)
	case cfg.PoisonAfter < 0:
		return bad("PoisonAfter %d is negative; 0 turns poison detection off", cfg.PoisonAfter)
	}
	for _, s := range cfg.Subscriptions {
		if err := validateSubscription(s); err != nil {
			return fmt.Errorf("%w: Subscriptions: %w", ErrConfig, err)
		}
	}
	return nil
}

func validateSubscription(s Subscription) error {
	if err := topic.ValidateFilter(s.Filter); err != nil {
		return err
	}
	if s.QoS > 2 {
		return fmt.Errorf("%w: filter %q has QoS %d; use 0, 1 or 2", topic.ErrInvalid, s.Filter, s.QoS)
	}
	return nil
}

// parseBrokerURL checks a ws:// or wss:// URL. Its errors never contain the query string (which may hold
// a signature).
func parseBrokerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q does not parse; expected ws://host[:port]/path or wss://…", redactURLString(raw))
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("broker URL %s has scheme %q; only ws:// and wss:// (MQTT over WebSocket) are supported",
			redactURL(u), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("broker URL %s has no host", redactURL(u))
	}
	return u, nil
}

// redactURL returns scheme://host/path: no user info, no query string, no fragment.
func redactURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

func redactURLString(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return redactURL(u)
	}
	// Unparseable: keep only the scheme; the rest may hold credentials.
	if i := strings.Index(raw, "://"); i >= 0 && i < 10 {
		return raw[:i+3] + "…"
	}
	return "…"
}
