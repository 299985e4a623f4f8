package transport

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Test with errors.Is; the wrapping error carries the details (topic, reason code, …).
var (
	// ErrExpired: the message's Expires time passed before it could be sent (the message is passed to Source.Expire).
	ErrExpired = errors.New("message expired before it could be sent")
	// ErrRefused: the broker answered with a reason code >= 0x80 (PUBACK to Source.Quarantine, SUBACK from
	// Subscribe, CONNACK in Status.LastError).
	ErrRefused = errors.New("refused by the broker")
	// ErrInvalidMessage: the message can never be published as given (bad topic, QoS > 1, or a feature
	// the broker does not offer such as retain); passed to Source.Quarantine.
	ErrInvalidMessage = errors.New("message cannot be published")
	// ErrServerDisconnect: the broker sent DISCONNECT.
	ErrServerDisconnect = errors.New("broker closed the session")
	// ErrKeepalive: no PINGRESP in time; the link is considered dead.
	ErrKeepalive = errors.New("keepalive failed")
	// ErrClosedAfterConnect: the connection closed before a CONNACK arrived. With AWS IoT this usually
	// means the identity has no IoT policy attached or the role lacks iot:Connect.
	ErrClosedAfterConnect = errors.New("connection closed by the broker right after CONNECT")
	// ErrTooManySubscriptions: Subscribe would exceed Config.MaxSubscriptions distinct filters.
	ErrTooManySubscriptions = errors.New("too many subscriptions")
	// ErrPacketTooLarge: the broker sent a packet other than PUBLISH larger than Config.MaxPacketSize
	// (which CONNECT announced, so the broker broke [MQTT-3.1.2-25]). The read fails before anything is
	// allocated for it, DISCONNECT 0x95 is sent and the connection is retried. (An oversized PUBLISH is
	// discarded instead and the connection stays up; see Status.InboundTooLarge.)
	ErrPacketTooLarge = errors.New("inbound MQTT packet too large")
	// ErrPoison: the broker closed the connection each time this message was sent, Config.PoisonAfter
	// connections in a row with nothing acknowledged; passed to Source.Quarantine so the queue moves on.
	// The wrapping error reads "the broker closed the connection each time this message was sent (N times
	// in a row): <last close reason>" and also wraps that reason.
	ErrPoison = errors.New("the broker closed the connection each time this message was sent")
	// ErrEndpoint: Config.Endpoint failed, so no connection was attempted (for AWS IoT: no credentials
	// from Cognito or the environment to sign the URL with). The wrapping error also wraps the hook's.
	ErrEndpoint = errors.New("resolving the broker endpoint")
	// ErrRunning: Run was called while another Run of the same Client is active.
	ErrRunning = errors.New("transport client is already running")
)

// HandshakeError is returned (wrapped) when the broker answered the WebSocket upgrade with an HTTP
// status other than 101: AWS IoT answers 403 to a bad or expired signature, a wrong region or a skewed
// clock. Header keeps the answer's headers (its Date tells the server's clock); Body its first bytes.
type HandshakeError struct {
	URL        string // without query string
	StatusCode int
	Header     http.Header
	Body       string
	Err        error
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("websocket handshake with %s failed: HTTP %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (e *HandshakeError) Unwrap() error { return e.Err }
