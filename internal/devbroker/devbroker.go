package devbroker

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configures a Broker.
type Options struct {
	WSAddr  string      // WebSocket listen address (default "127.0.0.1:0"); served at /mqtt
	TCPAddr string      // plain MQTT listen address; "" = no TCP listener
	TLS     *tls.Config // when set, the WebSocket listener serves wss://
	// ReceiveMaximum sent in CONNACK (0 = mochi's default, 1024).
	ReceiveMaximum uint16
	// MaximumPacketSize sent in CONNACK (0 = no limit).
	MaximumPacketSize uint32
	Logger            *slog.Logger // nil = discard
	LogPublishes      bool         // log topic and size of every PUBLISH at Info
	Hooks             []mqtt.Hook  // extra hooks, added after the auth hook (tests use these)
	// ACL, when set, decides each publish (write=true) and subscribe (write=false); nil allows all.
	ACL func(clientID, topic string, write bool) bool
}

// Broker is a running in-process broker.
type Broker struct {
	Server  *mqtt.Server // the mochi server, for inline publishes and inspection
	wsAddr  string
	tcpAddr string
	scheme  string

	closeOnce sync.Once
}

// Start binds the listeners and starts serving. The broker accepts every client and every topic.
func Start(opts Options) (*Broker, error) {
	if opts.WSAddr == "" {
		opts.WSAddr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	caps := mqtt.NewDefaultServerCapabilities()
	if opts.ReceiveMaximum > 0 {
		caps.ReceiveMaximum = opts.ReceiveMaximum
	}
	caps.MaximumPacketSize = opts.MaximumPacketSize
	s := mqtt.New(&mqtt.Options{Logger: log, Capabilities: caps, InlineClient: true})
	if err := s.AddHook(&allowHook{acl: opts.ACL}, nil); err != nil {
		return nil, fmt.Errorf("devbroker: auth hook: %w", err)
	}
	if opts.LogPublishes {
		if err := s.AddHook(&logHook{log: log}, nil); err != nil {
			return nil, fmt.Errorf("devbroker: log hook: %w", err)
		}
	}
	if opts.MaximumPacketSize > 0 {
		// mochi enforces the limit but does not announce it in CONNACK; announce it [MQTT-3.2.2.3.6].
		if err := s.AddHook(&maxPacketHook{size: opts.MaximumPacketSize}, nil); err != nil {
			return nil, fmt.Errorf("devbroker: max packet hook: %w", err)
		}
	}
	for _, h := range opts.Hooks {
		if err := s.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("devbroker: hook %s: %w", h.ID(), err)
		}
	}
	ws, err := newWSListener("ws", opts.WSAddr, opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("devbroker: websocket listener on %s: %w", opts.WSAddr, err)
	}
	if err := s.AddListener(ws); err != nil {
		_ = ws.ln.Close()
		return nil, fmt.Errorf("devbroker: %w", err)
	}
	b := &Broker{Server: s, wsAddr: ws.Address(), scheme: ws.Protocol()}
	if opts.TCPAddr != "" {
		tcp := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: opts.TCPAddr})
		if err := s.AddListener(tcp); err != nil {
			_ = ws.ln.Close()
			return nil, fmt.Errorf("devbroker: tcp listener on %s: %w", opts.TCPAddr, err)
		}
		b.tcpAddr = tcp.Address()
	}
	if err := s.Serve(); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("devbroker: serve: %w", err)
	}
	return b, nil
}

// Addr is the WebSocket listener's host:port.
func (b *Broker) Addr() string { return b.wsAddr }

// TCPAddr is the plain MQTT listener's host:port, or "" when there is none.
func (b *Broker) TCPAddr() string { return b.tcpAddr }

// URL is the WebSocket URL clients connect to, e.g. ws://127.0.0.1:8083/mqtt.
func (b *Broker) URL() string { return b.scheme + "://" + b.wsAddr + "/mqtt" }

// Close disconnects every client, stops the listeners and waits for the broker's goroutines.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.Server.Close() })
	return err
}

// logHook logs each PUBLISH the broker receives.
type logHook struct {
	mqtt.HookBase
	log *slog.Logger
}

func (h *logHook) ID() string { return "log-publishes" }

func (h *logHook) Provides(b byte) bool { return b == mqtt.OnPublished }

func (h *logHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.log.Info("publish", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos,
		"retain", pk.FixedHeader.Retain, "bytes", len(pk.Payload))
}

// allowHook lets every client connect and, unless Options.ACL says otherwise, use every topic (mochi's hooks/auth.AllowHook, without that
// package's YAML dependency).
type allowHook struct {
	mqtt.HookBase
	acl func(clientID, topic string, write bool) bool
}

func (h *allowHook) ID() string { return "allow-all-auth" }

func (h *allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.acl == nil || h.acl(cl.ID, topic, write)
}

// maxPacketHook adds Maximum Packet Size to every CONNACK.
type maxPacketHook struct {
	mqtt.HookBase
	size uint32
}

func (h *maxPacketHook) ID() string { return "announce-max-packet-size" }

func (h *maxPacketHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *maxPacketHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = h.size
	}
	return pk
}
