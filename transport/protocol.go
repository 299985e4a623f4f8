package transport

import (
	"errors"
	"fmt"
	"net/http"
)

// Protocol is an MQTT protocol version, or ProtocolAuto (Config.Protocol).
type Protocol string

// Protocol versions. The WebSocket subprotocol is "mqtt" for 5 and 3.1.1, "mqttv3.1" for 3.1.
const (
	// ProtocolAuto tries MQTT 5, then 3.1.1, then 3.1 while the broker refuses the version (see
	// Config.Protocol) and keeps the first that works for the life of the Client.
	ProtocolAuto Protocol = "auto"
	Protocol5    Protocol = "5"
	Protocol311  Protocol = "3.1.1"
	Protocol31   Protocol = "3.1"
)

// autoOrder is the order ProtocolAuto tries the versions in.
var autoOrder = []Protocol{Protocol5, Protocol311, Protocol31}

// ErrUnsupportedVersion is wrapped by a connection error when the broker refused the MQTT protocol
// version: an MQTT 5 CONNACK 0x84, a 3.x CONNACK return code 1, or (unless Config.ClosedIsNotVersion)
// a close before any CONNACK under ProtocolAuto.
var ErrUnsupportedVersion = errors.New("the broker does not accept this MQTT protocol version")

func (p Protocol) valid() bool {
	switch p {
	case ProtocolAuto, Protocol5, Protocol311, Protocol31:
		return true
	}
	return false
}

// subprotocol is the WebSocket subprotocol of a version [MQTT-6.0.0-3]; MQTT 3.1 brokers (Paho JS with
// mqttVersion 3, Mosquitto) use "mqttv3.1".
func (p Protocol) subprotocol() string {
	if p == Protocol31 {
		return "mqttv3.1"
	}
	return "mqtt"
}

// level is the Protocol Level byte of CONNECT.
func (p Protocol) level() byte {
	switch p {
	case Protocol31:
		return 3
	case Protocol311:
		return 4
	}
	return 5
}

// candidates returns the versions the next connection tries, in order: the one that worked before
// under ProtocolAuto, else all of autoOrder, else the configured one.
func (c *Client) candidates() []Protocol {
	c.mu.Lock()
	settled := c.settled
	c.mu.Unlock()
	switch {
	case settled != "":
		return []Protocol{settled}
	case c.cfg.Protocol == ProtocolAuto:
		return autoOrder
	}
	return []Protocol{c.cfg.Protocol}
}

// versionRefused reports whether err (from connecting with some version) says the broker does not
// speak that version, so that ProtocolAuto tries the next one.
func (c *Client) versionRefused(err error) bool {
	if errors.Is(err, ErrUnsupportedVersion) {
		return true
	}
	// A server that speaks MQTT 3.1 over WebSocket only with the subprotocol mqttv3.1 refuses the
	// upgrade offered with "mqtt" (400 Bad Request, or 426) before any CONNECT: the next versions get
	// their own upgrade, and 3.1's offers mqttv3.1.
	var he *HandshakeError
	if errors.As(err, &he) && (he.StatusCode == http.StatusBadRequest || he.StatusCode == http.StatusUpgradeRequired) {
		return !c.cfg.ClosedIsNotVersion
	}
	// RabbitMQ before 3.13 closes the WebSocket (1011) on an MQTT 5 CONNECT; some brokers close on
	// CONNECT with a level they do not know. AWS IoT closes for a missing policy: not a version.
	return errors.Is(err, ErrClosedAfterConnect) && !c.cfg.ClosedIsNotVersion
}

// versionHint is appended to a connection error when a forced version may be the cause.
func (c *Client) versionHint(v Protocol, err error) error {
	if c.cfg.Protocol == ProtocolAuto {
		return err
	}
	others := `"auto"`
	if v == Protocol5 {
		others += ` or "3.1.1"`
	}
	switch {
	case errors.Is(err, ErrUnsupportedVersion):
		return fmt.Errorf("%w; set protocol = %s", err, others)
	case errors.Is(err, ErrClosedAfterConnect) && !c.cfg.ClosedIsNotVersion:
		return fmt.Errorf("%w (a broker that does not speak MQTT %s may close the connection like this; set protocol = %s)",
			err, v, others)
	}
	return err
}

// connack3Text names a 3.1.1 / 3.1 CONNACK return code [MQTT-3.2.2.3].
func connack3Text(rc byte) string {
	switch rc {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown return code"
}

// versionError is a refused protocol version in the broker's words; it wraps ErrUnsupportedVersion and
// ErrRefused without repeating their text.
type versionError struct{ msg string }

func (e *versionError) Error() string   { return e.msg }
func (e *versionError) Unwrap() []error { return []error{ErrUnsupportedVersion, ErrRefused} }

// connack3Error is the error for a refusing 3.x CONNACK (also one that answered an MQTT 5 CONNECT).
func connack3Error(rc byte, asked Protocol) error {
	if rc == 1 {
		if asked == Protocol5 {
			return &versionError{"the broker speaks MQTT 3.1.1 only (CONNACK return code 1: unacceptable protocol version)"}
		}
		return &versionError{fmt.Sprintf("the broker does not speak MQTT %s (CONNACK return code 1: unacceptable protocol version)", asked)}
	}
	return fmt.Errorf("%w: CONNACK return code %d (%s)", ErrRefused, rc, connack3Text(rc))
}
