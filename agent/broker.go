package agent

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/redact"
	"github.com/edge-agent/edge-agent/transport"
)

// link is one broker of the config ([broker] or one [[broker]]): its connection, its lane of the
// queue store, its subscriptions, its diagnosis and its counters. Links share nothing on the send path
// but the queue's committer: each transport drains its own lane, so a broker that is down, slow or
// refusing never delays another.
type link struct {
	idx     int // its lane's index in the store (queue.Lane(idx)) and its place in Agent.links
	name    string
	cfg     *config.Broker
	log     *slog.Logger // carries broker=name
	secrets *redact.Set
	tlsCfg  *tls.Config
	passwd  []byte
	aws     *awsiot.Provider         // provider aws-iot only
	subs    []transport.Subscription // the [[subscribe]] entries of this broker
	diag    diagnosis
	stats   counters

	// set by Run
	q  *queue.Queue // its lane
	tr *transport.Client
}

// newLink prepares broker b (index idx of cfg.Brokers): it reads its password and CA files and
// builds its AWS IoT provider, so that a bad file fails before anything runs.
func newLink(cfg *config.Config, idx int, log *slog.Logger, secrets *redact.Set) (*link, error) {
	b := &cfg.Brokers[idx]
	l := &link{idx: idx, name: b.Name, cfg: b, log: log.With("broker", b.Name), secrets: secrets}
	aws, err := awsiot.FromConfig(cfg, b, l.log.With("component", "aws"), secrets) // nil unless aws-iot
	if err != nil {
		where := b.Provider
		if l.name != config.DefaultBrokerName {
			where = fmt.Sprintf("broker %q (%s)", l.name, b.Provider)
		}
		return nil, fmt.Errorf("agent: %s: %w", where, err)
	}
	l.aws = aws
	if b.PasswordFile != "" {
		pw, err := os.ReadFile(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: %w", l.key("password_file"), err)
		}
		l.passwd = bytes.TrimRight(pw, "\r\n")
		secrets.Add("broker password", string(l.passwd))
	}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: %w", l.key("ca_file"), err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent: %s %s: no PEM certificates found", l.key("ca_file"), b.CAFile)
		}
		l.tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	for _, s := range cfg.Subscribe {
		if s.Broker == "" || s.Broker == b.Name {
			l.subs = append(l.subs, transport.Subscription{Filter: s.Topic, QoS: byte(s.QoS)})
		}
	}
	return l, nil
}

// key names one of this broker's config keys for a person: "broker.ca_file" for the single [broker]
// form, `broker "plant" ca_file` for a [[broker]].
func (l *link) key(k string) string {
	if l.name == config.DefaultBrokerName {
		return "broker." + k
	}
	return fmt.Sprintf("broker %q %s", l.name, k)
}

// takes reports whether this broker's publish filters route a message on topic t to it (config
// key publish; none = every topic).
func (l *link) takes(t string) bool { return l.cfg.Routes(t) }

// transportConfig is this broker's transport configuration: its keys of the resolved config (with
// the provider's limits already applied by config), its subscriptions, and its callbacks; inbound
// messages go to h.
func (l *link) transportConfig(h *hub) transport.Config {
	b := l.cfg
	tcfg := transport.Config{
		URL:            b.URL,
		ClientID:       b.ClientID,
		Username:       b.Username,
		Password:       l.passwd,
		TLS:            l.tlsCfg,
		Keepalive:      b.Keepalive.Duration,
		Subscriptions:  l.subs,
		MaxInflight:    b.MaxInflight,
		OnMessage:      func(m transport.Received) { l.stats.received.Add(1); h.dispatch(l.idx, m) },
		OnConnectError: l.onConnectError,
		OnConnected:    l.onConnected,
		Logger:         l.log.With("component", "transport"),
		// config applies the provider's limits (Broker.Limits) to these keys.
		MaxPublishRate:   b.MaxPublishRate,
		MaxByteRate:      int64(b.MaxByteRate),
		MaxSubscriptions: b.MaxSubscriptions,
		// Issue 7: the inbound side is bounded, a message the broker hangs up on cannot block the queue.
		MaxPacketSize: uint32(b.MaxPacketSize),
		PoisonAfter:   b.PoisonAfter,
		Backoff:       transport.FleetJitter(b.ReconnectMin.Duration, b.ReconnectMax.Duration),
	}
	// Issue 10: the MQTT version (negotiated under "auto"), the 3.x window and a persistent session.
	tcfg.Protocol = transport.Protocol(b.Protocol)
	tcfg.ClosedIsNotVersion = b.Limits.CloseIsPolicy
	tcfg.MaxInflight3 = b.MaxInflight3
	tcfg.SessionExpiry = b.SessionExpiry.Duration
	if l.aws != nil {
		tcfg.Endpoint = l.aws.Endpoint
	}
	return tcfg
}

// laneOptions are this broker's queue bounds (its [broker.queue], defaults from [queue]).
func (l *link) laneOptions() queue.LaneOptions {
	q := l.cfg.Queue
	return queue.LaneOptions{
		Name:           l.name,
		MaxBytes:       int64(q.MaxBytes),
		Overflow:       overflowOf(q.Overflow),
		MaxAge:         q.MaxAge.Duration,
		MaxDeadLetters: q.MaxDeadLetters,
	}
}

func overflowOf(s string) queue.Overflow {
	if s == config.OverflowReject {
		return queue.Reject
	}
	return queue.DropOldest
}
