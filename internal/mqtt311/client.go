package mqtt311

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const (
	// opTimeout bounds each connect, subscribe and publish.
	opTimeout = 10 * time.Second
	// disconnectQuiesce is what Close gives paho to finish work in flight (ms).
	disconnectQuiesce = 250
)

// Option configures Subscribe and Connect.
type Option func(*options)

type options struct {
	version    uint
	clientID   string
	persistent bool
	user, pass string
}

// V31 makes the client speak MQTT 3.1 (protocol name "MQIsdp", level 3) instead
// of 3.1.1.
func V31() Option { return func(o *options) { o.version = 3 } }

// ClientID sets the client identifier (default: a random "mqtt311-…", 23
// characters at most as 3.1 demands).
func ClientID(id string) Option { return func(o *options) { o.clientID = id } }

// Persistent connects with clean session = false, so the broker keeps the
// subscription and queues QoS 1 messages while the client is away. Use it with a
// fixed ClientID to resume the same session from a new Sub.
func Persistent() Option { return func(o *options) { o.persistent = true } }

// Credentials sets the user name and password of the CONNECT.
func Credentials(user, password string) Option {
	return func(o *options) { o.user, o.pass = user, password }
}

func newOptions(addr string, opts []Option) (*paho.ClientOptions, options) {
	o := options{version: 4}
	for _, opt := range opts {
		opt(&o)
	}
	if o.clientID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.clientID = "mqtt311-" + hex.EncodeToString(b[:])[:15]
	}
	server := addr
	if !strings.Contains(addr, "://") {
		server = "tcp://" + addr
	}
	po := paho.NewClientOptions().
		AddBroker(server).
		SetClientID(o.clientID).
		SetProtocolVersion(o.version). // no fallback to another version
		SetCleanSession(!o.persistent).
		SetOrderMatters(true).
		SetConnectTimeout(opTimeout).
		SetWriteTimeout(opTimeout).
		SetKeepAlive(30 * time.Second).
		SetMaxReconnectInterval(time.Second)
	if o.user != "" {
		po.SetUsername(o.user).SetPassword(o.pass)
	}
	return po, o
}

// Client is a connected MQTT 3.1.1 client for publishing.
type Client struct {
	c         paho.Client
	addr      string
	closeOnce sync.Once
}

// Connect connects a client to addr (t.Fatal if the broker refuses or does not
// answer within 10 s). It does not reconnect by itself. A t.Cleanup closes it.
func Connect(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	po, _ := newOptions(addr, opts)
	po.SetAutoReconnect(false)
	c := paho.NewClient(po)
	tok := c.Connect()
	if !tok.WaitTimeout(opTimeout) {
		c.Disconnect(0)
		t.Fatalf("mqtt311: connect to %s: no CONNACK within %v", addr, opTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("mqtt311: connect to %s: %v", addr, err)
	}
	cl := &Client{c: c, addr: addr}
	t.Cleanup(cl.Close)
	return cl
}

// Publish sends one message and, for QoS 1 and 2, waits for the broker's
// acknowledgement (t.Fatal after 10 s or on a lost connection).
func (c *Client) Publish(t testing.TB, topic string, payload []byte, qos byte) {
	t.Helper()
	tok := c.c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(opTimeout) {
		t.Fatalf("mqtt311: publish to %q on %s: not acknowledged within %v", topic, c.addr, opTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("mqtt311: publish to %q on %s: %v", topic, c.addr, err)
	}
}

// Close disconnects (DISCONNECT, then paho's goroutines end). Idempotent.
func (c *Client) Close() { c.closeOnce.Do(func() { c.c.Disconnect(disconnectQuiesce) }) }

// Publish connects to addr, sends one message at qos (waiting for its
// acknowledgement), and disconnects.
func Publish(t testing.TB, addr, topic string, payload []byte, qos byte, opts ...Option) {
	t.Helper()
	c := Connect(t, addr, opts...)
	defer c.Close()
	c.Publish(t, topic, payload, qos)
}
