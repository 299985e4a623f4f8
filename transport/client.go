package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states reported in Status.State.
const (
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateDisconnected = "disconnected" // waiting for the next attempt
	StateStopped      = "stopped"      // Run is not running
)

// Status is a snapshot of the client. Cheap to take; safe from any goroutine.
type Status struct {
	State          string
	Since          time.Time // when State last changed
	URL            string    // broker URL without user info or query string (never leaks a signature)
	LastError      string    // last connection, SUBACK or publish-level error; kept after recovery
	LastErrorAt    time.Time // when LastError happened
	Attempts       int       // failed attempts since the last successful CONNACK
	Connects       uint64    // successful CONNACKs since New
	Inflight       int       // QoS 1 publishes sent and not yet acknowledged
	ReceiveMaximum uint16    // the broker's Receive Maximum on the current/last connection
	Published      uint64    // messages written to a connection (resends count again)
	Acked          uint64    // Source.Ack calls
	Rejected       uint64    // Source.Quarantine calls
	Expired        uint64    // Source.Expire calls: expired before they could be sent

	// Added beyond the package contract:
	Window int // QoS 1 window in use: min(MaxInflight, ReceiveMaximum); MaxInflight3 for MQTT 3.x
	// Protocol is the MQTT version of the current/last connection ("5", "3.1.1" or "3.1"; "" before the
	// first CONNACK). SessionPresent: the broker resumed a persistent session (Config.SessionExpiry).
	Protocol       string
	SessionPresent bool

	// Inbound drops: broker messages that never reached OnMessage (a QoS 1 one was acknowledged to the
	// broker all the same, so it is lost). The transport keeps no queue of its own (OnMessage is called
	// on the reader), so the one reason left is a PUBLISH over MaxPacketSize, discarded unread;
	// DroppedIncoming is the total.
	DroppedIncoming         uint64
	DroppedIncomingTooLarge uint64

	// InboundTooLarge counts inbound packets over MaxPacketSize: discarded PUBLISHes and other packets
	// that ended their connection (ErrPacketTooLarge). The last one is described in LastError.
	InboundTooLarge uint64
	// Poisoned counts messages passed to Source.Quarantine with ErrPoison (also counted in Rejected).
	Poisoned uint64
}

// Client keeps one MQTT (5, 3.1.1 or 3.1) over WebSocket connection alive and pumps a Source through it.
// All methods are safe for concurrent use. Run may only be active once at a time.
type Client struct {
	cfg Config
	src Source
	log *slog.Logger

	running atomic.Bool

	mu        sync.Mutex // guards the fields below
	state     string
	since     time.Time
	url       string
	lastErr   string
	lastErrAt time.Time
	attempts  int
	recvMax   uint16
	window    int
	cur       *link              // the live connection, or nil: set by attach, cleared by detach (lifecycle.go)
	settled   Protocol           // ProtocolAuto: the version that worked; "" until one did
	proto     Protocol           // the version of the current/last connection
	session   bool               // Session Present on the current/last connection
	dyn       map[string]*subRef // dynamic subscriptions by filter
	always    map[string]byte    // Config.Subscriptions by filter (max QoS)

	connects, published, acked, rejected, expired atomic.Uint64
	dropped, droppedTooLarge                      atomic.Uint64
	inboundTooLarge, poisoned                     atomic.Uint64
	inflight                                      atomic.Int64

	testHooks *testHooks // nil outside tests

	poison      poisonWatch // touched only by Run's goroutine, between connections
	tooLargeLog logLimit    // rate limit for the oversized-PUBLISH warning

	subOp   chan struct{} // capacity 1: serialises subscription traffic with restore-on-connect
	limiter *rateLimiter  // nil = no rate limit; used by the sender goroutine only
}

// testHooks lets tests observe peaks that production code does not keep; nil outside tests, so the send
// and receive paths pay a nil check only.
type testHooks struct {
	peakInflight atomic.Int64
}

func (h *testHooks) inflight(n int64) { raiseTo(&h.peakInflight, n) }

func raiseTo(peak *atomic.Int64, n int64) {
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
}

// New validates cfg, applies defaults and returns a Client that does nothing until Run.
func New(cfg Config, src Source) (*Client, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: Source is nil", ErrConfig)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Subscriptions = append([]Subscription(nil), cfg.Subscriptions...)
	cfg.Password = append([]byte(nil), cfg.Password...)
	c := &Client{
		cfg:         cfg,
		src:         src,
		log:         cfg.Logger,
		state:       StateStopped,
		since:       time.Now(),
		dyn:         make(map[string]*subRef),
		always:      make(map[string]byte),
		subOp:       make(chan struct{}, 1),
		limiter:     newRateLimiter(cfg.MaxPublishRate, cfg.MaxByteRate),
		poison:      poisonWatch{after: cfg.PoisonAfter},
		tooLargeLog: logLimit{every: 10 * time.Second},
	}
	if cfg.Endpoint == nil {
		c.url = redactURLString(cfg.URL)
	}
	for _, s := range cfg.Subscriptions {
		c.always[s.Filter] = max(c.always[s.Filter], s.QoS)
	}
	return c, nil
}

// Status returns a snapshot of the connection state and counters.
func (c *Client) Status() Status {
	c.mu.Lock()
	s := Status{
		State: c.state, Since: c.since, URL: c.url, LastError: c.lastErr, LastErrorAt: c.lastErrAt, Attempts: c.attempts,
		ReceiveMaximum: c.recvMax, Window: c.window, Protocol: string(c.proto), SessionPresent: c.session,
	}
	c.mu.Unlock()
	s.Connects = c.connects.Load()
	s.Inflight = int(c.inflight.Load())
	s.Published = c.published.Load()
	s.Acked = c.acked.Load()
	s.Rejected = c.rejected.Load()
	s.Expired = c.expired.Load()
	s.DroppedIncoming = c.dropped.Load()
	s.DroppedIncomingTooLarge = c.droppedTooLarge.Load()
	s.InboundTooLarge = c.inboundTooLarge.Load()
	s.Poisoned = c.poisoned.Load()
	return s
}

// Run connects, publishes and reconnects until ctx is done, then stops sending, waits up to DrainTimeout
// for in-flight PUBACKs, sends DISCONNECT, closes the connection and returns nil. Failures never end Run:
// each is logged once with its reason and the delay before the next attempt (FullJitter by default; the
// attempt counter resets after a connection stayed up StableAfter).
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)

	defer c.setState(StateStopped, nil)

	backoffAttempt := 0
	for {
		up, err := c.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up >= c.cfg.StableAfter {
			backoffAttempt = 0
		}
		delay := c.cfg.Backoff(backoffAttempt)
		backoffAttempt++
		if err == nil {
			err = errors.New("connection closed")
		}
		c.mu.Lock()
		c.attempts++
		attempts, url := c.attempts, c.url
		c.mu.Unlock()
		c.setState(StateDisconnected, err)
		if c.cfg.OnConnectError != nil {
			c.cfg.OnConnectError(err)
		}
		if up > 0 {
			c.log.Warn("mqtt connection lost", "url", url, "error", err,
				"connected_for", up.Round(time.Millisecond), "retry_in", delay.Round(time.Millisecond))
		} else {
			c.log.Warn("mqtt connection attempt failed", "url", url, "attempt", attempts, "error", err,
				"retry_in", delay.Round(time.Millisecond))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) writeTimeout() time.Duration {
	return max(c.cfg.Keepalive, 5*time.Second)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (c *Client) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != state {
		c.state, c.since = state, time.Now()
	}
	if err != nil {
		c.lastErr, c.lastErrAt = err.Error(), time.Now()
	}
}

func (c *Client) noteError(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err.Error(), time.Now()
	c.mu.Unlock()
}

// onPublish runs on the wire's reader goroutine (paho's router for MQTT 5, wire3's reader for 3.x) and
// hands m to OnMessage right there: the transport keeps no queue of its own, the consumer (the agent's
// hub) buffers each message once. The wire answers a QoS 1 message (PUBACK) after this returns, and
// reads nothing else meanwhile, so OnMessage must not block.
func (c *Client) onPublish(m Received) { c.cfg.OnMessage(m) }

// inboundOversized is called on paho's reader goroutine (through the connection's inboundGuard) for
// every inbound packet over MaxPacketSize: it counts it, keeps it in LastError and logs it, rate-limited.
func (c *Client) inboundOversized(ev tooLargePacket) {
	n := c.inboundTooLarge.Add(1)
	var err error
	if ev.Type == typePublish {
		c.droppedTooLarge.Add(1)
		c.dropped.Add(1)
		topic := fmt.Sprintf("%q", ev.Topic)
		if !ev.TopicKnown {
			topic = "(unknown: the connection ended before the topic arrived)"
		} else if len(ev.Topic) == maxTopicInLog {
			topic += "…"
		}
		err = fmt.Errorf("broker sent a %d-byte PUBLISH on topic %s, over broker.max_packet_size %d: discarded",
			ev.Size, topic, ev.Limit)
	} else {
		err = fmt.Errorf("broker sent a %d-byte %s packet, over broker.max_packet_size %d: connection closed",
			ev.Size, packetName(ev.Type), ev.Limit)
	}
	c.noteError(err)
	if ok, suppressed := c.tooLargeLog.allow(); ok {
		c.log.Warn(err.Error(), "qos", ev.QoS, "inbound_too_large_total", n, "suppressed", suppressed)
	}
}
