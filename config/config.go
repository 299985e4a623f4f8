package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edge-agent/edge-agent/topic"
)

// Config is the whole agent configuration. Field tags are the TOML keys.
type Config struct {
	ClientID  string      `toml:"client_id"`
	StateDir  string      `toml:"state_dir"`
	Socket    string      `toml:"socket"`
	Broker    Broker      `toml:"broker"`
	Cognito   Cognito     `toml:"cognito"`
	Queue     Queue       `toml:"queue"`
	Subscribe []Subscribe `toml:"subscribe"`
	Access    []Access    `toml:"access"`
	Log       Log         `toml:"log"`
	API       API         `toml:"api"`
	Metrics   Metrics     `toml:"metrics"`

	// Warnings are things Parse adjusted instead of refusing (a keepalive
	// clamped into the AWS IoT range, for instance). The caller logs them.
	Warnings []string `toml:"-"`
	// HasCognito is true when the file has a [cognito] table for Brokers[0] ([cognito] or
	// [broker.cognito]); per broker, see Broker.UsesCognito.
	HasCognito bool `toml:"-"`

	// Brokers is every broker, in file order (issue 11): the [[broker]] array, or the single
	// [broker] table as one broker named DefaultBrokerName. Each carries its own resolved
	// client_id, Cognito settings, queue bounds and limits. Broker and Cognito above are
	// Brokers[0]'s, for code that knows of one broker only.
	Brokers []Broker `toml:"-"`
}

// Broker is the [broker] table, or one [[broker]] entry: where and how to connect, and which
// messages go there.
type Broker struct {
	// Name is [A-Za-z0-9_-]+, unique; the single [broker] form is DefaultBrokerName.
	Name string `toml:"name"`
	// Publish are the topic filters of the messages this broker gets; empty = every topic.
	Publish []string `toml:"publish"`
	// ClientID is this broker's MQTT client id, resolved (default: the top-level client_id).
	ClientID string `toml:"client_id"`
	// Cognito is [broker.cognito] (the single form's [cognito]).
	Cognito Cognito `toml:"cognito"`
	// Queue is this broker's queue bounds ([broker.queue], defaults from [queue]); the top-level
	// [queue] max_bytes bounds all brokers' queues together.
	Queue        Queue    `toml:"queue"`
	Provider     string   `toml:"provider"` // ProviderMQTT or ProviderAWSIoT
	URL          string   `toml:"url"`
	Region       string   `toml:"region"` // aws-iot; parsed from the host when empty
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"` // Load makes it absolute (relative to the config file)
	CAFile       string   `toml:"ca_file"`       // Load makes it absolute (relative to the config file)
	Keepalive    Duration `toml:"keepalive"`
	MaxInflight  int      `toml:"max_inflight"`
	// MaxPublishRate bounds outgoing publishes per second (0 = no limit; aws-iot default 100, the
	// per-connection quota). Raise it for accounts with raised quotas.
	MaxPublishRate float64 `toml:"max_publish_rate"`
	// MaxByteRate bounds outgoing publish bytes per second (0 = no limit; aws-iot default 512KiB).
	MaxByteRate Size `toml:"max_byte_rate"`
	// MaxSubscriptions bounds distinct broker subscriptions (0 = no limit; aws-iot default 50).
	MaxSubscriptions int `toml:"max_subscriptions"`
	// ReconnectMin and ReconnectMax bound the reconnect backoff (transport.FleetJitter): attempt n
	// (0: the first wait after a lost connection) waits a random time in
	// [ReconnectMin, min(ReconnectMax, ReconnectMax/2·2^n)], so a fleet that lost its broker comes
	// back spread over the first ReconnectMax/2. Defaults 1s and 2m; for aws-iot a ReconnectMin
	// below 1s is a warning (1 CONNECT per second per client id).
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
	// MaxPacketSize is the largest MQTT packet the agent accepts from the broker. It is announced in
	// CONNECT (Maximum Packet Size) and enforced on every inbound packet before anything is allocated for
	// it. Default: api.max_payload plus 8KiB for the topic and properties.
	MaxPacketSize Size `toml:"max_packet_size"`
	// IncomingBuffer (incoming_buffer) has no effect any more and setting it is a warning: broker
	// messages are buffered once, per local subscriber (api.subscriber_buffer, api.subscriber_budget).
	// The key stays accepted so that existing files keep loading.
	IncomingBuffer Size `toml:"incoming_buffer"`
	// PoisonAfter: a message that was the oldest one in flight each time the broker closed the
	// connection, this many times in a row with nothing acknowledged in between, goes to the
	// dead-letter store so that it cannot block the queue (default 3; 0 turns the rule off).
	PoisonAfter int `toml:"poison_after"`
	// Protocol is the MQTT version: "auto" (try 5, then 3.1.1, then 3.1 while the broker refuses the
	// version, and keep the first that works), "5", "3.1.1" or "3.1". Default: the provider's
	// (Limits.DefaultProtocol: "auto" for mqtt, "5" for aws-iot).
	Protocol string `toml:"protocol"`
	// SessionExpiry > 0 asks the broker to keep our session (subscriptions and the QoS 1 messages for
	// them) this long while we are away: MQTT 5 Session Expiry Interval, 3.x Clean Session = 0
	// (default 1h; 0 = a clean session on every connection). Whole seconds.
	SessionExpiry Duration `toml:"session_expiry"`
	// MaxInflight3 is the QoS 1 window on an MQTT 3.1.1 / 3.1 connection, which has no Receive
	// Maximum: max_inflight when the file sets it, else 20. Set by Parse; not a key of the file.
	MaxInflight3 int `toml:"-"`

	// Limits are the provider's limits, set by Parse (see Limits); not a key of the file.
	Limits Limits `toml:"-"`

	routes []topic.Filter // Publish, parsed by Parse (see Routes)
}

// Cognito is the [cognito] table: AWS credentials from an identity pool.
type Cognito struct {
	IdentityPoolID string `toml:"identity_pool_id"`
	Endpoint       string `toml:"endpoint"`
	// LoginProvider and LoginTokenFile, set together, make the identity an
	// authenticated one: every Cognito call sends Logins {LoginProvider: token},
	// the token read afresh from LoginTokenFile (so an external refresher can
	// rotate it). LoginProvider is the pool's provider name, e.g.
	// "cognito-idp.<region>.amazonaws.com/<user pool id>", "accounts.google.com"
	// or a developer provider name. Load makes LoginTokenFile absolute
	// (relative to the config file).
	LoginProvider  string `toml:"login_provider"`
	LoginTokenFile string `toml:"login_token_file"`
}

// Queue is the [queue] table: the on-disk bound.
type Queue struct {
	MaxBytes Size   `toml:"max_bytes"`
	Overflow string `toml:"overflow"` // OverflowDropOldest or OverflowReject
	// MaxAge drops (and counts) messages older than this instead of sending them (0 = keep forever).
	MaxAge Duration `toml:"max_age"`
	// MaxDeadLetters bounds the dead-letter store of messages the broker refused (default 10000).
	MaxDeadLetters int `toml:"max_dead_letters"`
}

// Subscribe is one [[subscribe]] entry: an always-on broker subscription.
type Subscribe struct {
	Topic string `toml:"topic"`
	QoS   int    `toml:"qos"`
	// Broker names the one broker this subscription is made with; "" = every broker.
	Broker string `toml:"broker"`
}

// Access is one [[access]] entry: who may use the local socket and for
// which topics. Exactly one of User, UID, GID, Group is set.
type Access struct {
	User      string   `toml:"user"`
	UID       *int     `toml:"uid"`
	GID       *int     `toml:"gid"`
	Group     string   `toml:"group"`
	Publish   []string `toml:"publish"`
	Subscribe []string `toml:"subscribe"`
}

// Log is the [log] table.
type Log struct {
	Level  string `toml:"level"`  // debug|info|warn|error
	Format string `toml:"format"` // text|json
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Listen is a TCP address ("127.0.0.1:9464", ":9464" for every address) on which GET /metrics,
	// and nothing else, is served for Prometheus (default "": off). The metrics carry no secrets; any
	// address is accepted, so a LAN scrape works, but only what the firewall allows can reach it.
	Listen string `toml:"listen"`
}

// API is the [api] table: limits of the local API. Together they are the agent's memory budget
// (see README, "Memory budget").
type API struct {
	MaxPayload Size `toml:"max_payload"` // default 256KiB for mqtt, 128KiB for aws-iot
	// MaxBatchBytes bounds one NDJSON publish request body (default 8MiB).
	MaxBatchBytes Size `toml:"max_batch_bytes"`
	// MaxBatchLines bounds the messages of one NDJSON publish request (default 10000).
	MaxBatchLines int `toml:"max_batch_lines"`
	// BodyBudget bounds the request-body bytes held in memory by all requests at once (default 24MiB);
	// a request that would exceed it is answered 503 with Retry-After.
	BodyBudget Size `toml:"body_budget"`
	// SubscriberBuffer bounds the bytes queued for one local subscriber stream (default 1MiB);
	// SubscriberBudget bounds them over all streams (default 8MiB). Past either, messages for a slow
	// subscriber are dropped and counted.
	SubscriberBuffer Size `toml:"subscriber_buffer"`
	SubscriberBudget Size `toml:"subscriber_budget"`
	// MaxSubscribers bounds concurrent subscriber streams (default 128).
	MaxSubscribers int `toml:"max_subscribers"`
	// MaxConnections bounds concurrent local API connections (default 64); more are answered 503.
	MaxConnections int `toml:"max_connections"`
	// ReadTimeout bounds reading one request, headers and body (default 30s); IdleTimeout closes a
	// kept-alive connection that sends nothing (default 2m).
	ReadTimeout Duration `toml:"read_timeout"`
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Provider names and overflow policies.
// DefaultBrokerName is the name of the broker of the single [broker] form.
const DefaultBrokerName = "default"

const (
	ProviderMQTT       = "mqtt"
	ProviderAWSIoT     = "aws-iot"
	OverflowDropOldest = "drop-oldest"
	OverflowReject     = "reject"
)

// Defaults that are not obvious from Default.
const (
	DefaultMaxPayloadMQTT   Size = 256 * KiB
	DefaultMaxPayloadAWSIoT Size = 128 * KiB
	MinQueueBytes           Size = 64 * KiB
	// PacketOverhead is what max_packet_size adds to api.max_payload by default: room for the topic,
	// properties and fixed header of a PUBLISH.
	PacketOverhead Size = 8 * KiB
	// MaxSocketPath is the longest socket path Linux can bind (sun_path holds 108 bytes with the NUL).
	MaxSocketPath = 107
)

// Default returns the configuration used for every key the file leaves
// out. client_id is the host name ("" when it cannot be read, which Parse
// then reports). api.max_payload is left 0 here; Parse fills it in from the
// provider.
func Default() *Config {
	host, _ := os.Hostname() // an error leaves "", reported by validation as a missing client_id
	return &Config{
		ClientID: host,
		StateDir: "/var/lib/edge-agent",
		Socket:   "/run/edge-agent/agent.sock",
		Broker: Broker{
			Provider:      ProviderMQTT,
			Keepalive:     Duration{60e9},
			MaxInflight:   64,
			ReconnectMin:  Duration{time.Second},
			ReconnectMax:  Duration{2 * time.Minute},
			PoisonAfter:   3,
			SessionExpiry: Duration{time.Hour},
		},
		Queue: Queue{MaxBytes: 256 * MiB, Overflow: OverflowDropOldest, MaxDeadLetters: 10000},
		Log:   Log{Level: "info", Format: "text"},
		API: API{
			MaxBatchBytes:    8 * MiB,
			MaxBatchLines:    10000,
			BodyBudget:       24 * MiB,
			SubscriberBuffer: MiB,
			SubscriberBudget: 8 * MiB,
			MaxSubscribers:   128,
			MaxConnections:   64,
			ReadTimeout:      Duration{30 * time.Second},
			IdleTimeout:      Duration{2 * time.Minute},
		},
	}
}

// Load reads the file at path and parses it (see Parse). It also resolves
// each broker's password_file, ca_file and (for provider aws-iot)
// cognito.login_token_file relative to the file's directory and checks that
// they can be opened.
//
// client_id templates are expanded with the machine's host name, /etc/machine-id and environment;
// Host.Load reads them from elsewhere.
func Load(path string) (*Config, error) { return Host{}.Load(path) }

// Load is config.Load with h for the client_id templates.
func (h Host) Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w (pass another file with --config)", err)
	}
	cfg, ix, err := parse(data, path, h)
	if err != nil {
		return nil, err
	}
	type fileKey struct {
		key    string
		p      *string
		secret bool // warn when every user may read it
	}
	var files []fileKey
	for i := range cfg.Brokers {
		b, key := &cfg.Brokers[i], ix.brokerKey(i)
		files = append(files, fileKey{key + ".password_file", &b.PasswordFile, true}, fileKey{key + ".ca_file", &b.CAFile, false})
		if b.Provider == ProviderAWSIoT { // otherwise [cognito] is ignored (a warning)
			ck := key + ".cognito"
			if !ix.hasPath(ck) {
				ck = "cognito" // the single broker's [cognito]
			}
			files = append(files, fileKey{ck + ".login_token_file", &b.Cognito.LoginTokenFile, true})
		}
	}
	var errs []error
	for _, f := range files {
		if *f.p == "" {
			continue
		}
		if !filepath.IsAbs(*f.p) {
			*f.p = filepath.Join(filepath.Dir(path), *f.p)
		}
		fh, err := os.Open(*f.p)
		if err != nil {
			errs = append(errs, ix.errorf(f.key, err, "cannot open %s: %v", *f.p, errors.Unwrap(err)))
			continue
		}
		st, err := fh.Stat()
		_ = fh.Close() // opened read-only to check access; nothing to flush
		switch {
		case err == nil && st.IsDir():
			errs = append(errs, ix.errorf(f.key, nil, "%s is a directory, not a file", *f.p))
		case err == nil && f.secret && st.Mode().Perm()&0o007 != 0:
			msg := fmt.Sprintf("%s: %s is readable by every user on this machine (mode %04o): it holds a secret; run chmod o-rwx %s",
				f.key, *f.p, st.Mode().Perm(), *f.p)
			if l := ix.lineOf(f.key); l > 0 {
				msg = fmt.Sprintf("%s:%d: %s", ix.file, l, msg)
			}
			cfg.Warnings = append(cfg.Warnings, msg)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.Broker, cfg.Cognito = cfg.Brokers[0], cfg.Brokers[0].Cognito
	return cfg, nil
}

// Parse reads a TOML document. name is used in error messages (usually the
// file name). Keys the document leaves out get their Default; the result is
// validated. It does not touch the file system, except to read /etc/machine-id for a client_id
// template that asks for it.
func Parse(data []byte, name string) (*Config, error) { return Host{}.Parse(data, name) }

// Parse is config.Parse with h for the client_id templates.
func (h Host) Parse(data []byte, name string) (*Config, error) {
	cfg, _, err := parse(data, name, h)
	return cfg, err
}

func parse(data []byte, name string, h Host) (*Config, *index, error) {
	ix, err := decode(data, name, Default())
	if err != nil {
		return nil, nil, err
	}
	cfg := ix.cfg
	if err := validate(cfg, ix, h); err != nil {
		return nil, nil, err
	}
	return cfg, ix, nil
}
