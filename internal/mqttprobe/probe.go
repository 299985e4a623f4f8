package mqttprobe

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mqttwire"
	"github.com/edge-agent/edge-agent/internal/wsstream"
)

// Level is the protocol level byte of a CONNECT.
type Level byte

// The protocol levels: 3 is MQTT 3.1 (protocol name "MQIsdp"), 4 is 3.1.1 and 5
// is MQTT 5 (both "MQTT").
const (
	V31  Level = 3
	V311 Level = 4
	V5   Level = 5
)

func (l Level) String() string {
	switch l {
	case V31:
		return "MQTT 3.1"
	case V311:
		return "MQTT 3.1.1"
	case V5:
		return "MQTT 5"
	}
	return fmt.Sprintf("protocol level %d", byte(l))
}

// ConnectPacket is a minimal CONNECT of the given level: clean session, keep alive
// 30 s, no will, no credentials, and for MQTT 5 an empty property list.
// [MQTT-3.1.2-1] protocol name, [MQTT-3.1.2-2] level; 3.1 uses "MQIsdp".
func ConnectPacket(level Level, clientID string) []byte {
	name := "MQTT"
	if level == V31 {
		name = "MQIsdp"
	}
	body := mqttwire.String(name)
	body = append(body, byte(level), 0x02, 0x00, 30) // flags: clean session; keep alive 30
	if level == V5 {
		body = append(body, 0x00) // property length 0
	}
	body = append(body, mqttwire.String(clientID)...)
	return mqttwire.Packet(0x10, body)
}

// Answer is what a server did after a CONNECT.
type Answer struct {
	// Packet is the whole first packet the server sent (fixed header included);
	// nil if it sent none.
	Packet []byte
	// Err is how reading that packet failed (io.EOF, a *websocket.CloseError, a
	// timeout); nil when Packet is complete.
	Err error
	// Then is, after a CONNACK that refused the connection, how the server ended
	// it within a second (io.EOF, a *websocket.CloseError); nil if the connection
	// was still open then or the CONNACK accepted it.
	Then error
	// Upgrade is the server's HTTP answer to the WebSocket upgrade (WS only; its
	// body already read into UpgradeBody and closed).
	Upgrade     *http.Response
	UpgradeBody []byte
}

// Connack returns the CONNACK's return/reason code (byte 4 of the packet: the
// 3.1.1 return code or the MQTT 5 reason code) and whether Packet is a CONNACK.
func (a Answer) Connack() (code byte, ok bool) {
	if len(a.Packet) < 4 || a.Packet[0] != 0x20 {
		return 0, false
	}
	return a.Packet[3], true
}

// String shows the answer for test logs: "packet 20 02 00 01" or "no packet: EOF".
func (a Answer) String() string {
	if a.Err == nil && a.Then != nil {
		return fmt.Sprintf("packet %s, then: %v", spaced(a.Packet), a.Then)
	}
	if a.Err == nil {
		return "packet " + spaced(a.Packet)
	}
	if len(a.Packet) > 0 {
		return fmt.Sprintf("partial packet %s, then: %v", spaced(a.Packet), a.Err)
	}
	return fmt.Sprintf("no packet: %v", a.Err)
}

func spaced(b []byte) string {
	h := hex.EncodeToString(b)
	out := make([]byte, 0, len(h)*3/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, h[i:i+2]...)
	}
	return string(out)
}

// TCP dials addr, sends a CONNECT of level and returns what came back within
// timeout. The error is only for a failed dial or write.
func TCP(addr string, level Level, timeout time.Duration) (Answer, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return Answer{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(ConnectPacket(level, "mqttprobe")); err != nil {
		return Answer{}, fmt.Errorf("write CONNECT to %s: %w", addr, err)
	}
	r := bufio.NewReader(c)
	a := Answer{}
	a.Packet, a.Err = readPacket(r)
	a.Then = then(a, r, c.SetReadDeadline)
	return a, nil
}

// WS opens a WebSocket to url offering subprotocol ("" offers none), sends a
// CONNECT of level as one binary message and returns what came back within
// timeout. A refused upgrade is an Answer with Upgrade set and Err
// websocket.ErrBadHandshake; the error is only for a failed dial or write.
func WS(url, subprotocol string, level Level, timeout time.Duration) (Answer, error) {
	d := websocket.Dialer{HandshakeTimeout: timeout}
	if subprotocol != "" {
		d.Subprotocols = []string{subprotocol}
	}
	ws, resp, err := d.Dial(url, nil)
	var a Answer
	if resp != nil {
		a.Upgrade = resp
		a.UpgradeBody, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}
	if errors.Is(err, websocket.ErrBadHandshake) {
		a.Err = err
		return a, nil
	}
	if err != nil {
		return a, err
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	_ = ws.SetWriteDeadline(time.Now().Add(timeout))
	if err := ws.WriteMessage(websocket.BinaryMessage, ConnectPacket(level, "mqttprobe")); err != nil {
		return a, fmt.Errorf("write CONNECT to %s: %w", url, err)
	}
	r := bufio.NewReader(&wsstream.Reader{WS: ws})
	a.Packet, a.Err = readPacket(r)
	a.Then = then(a, r, ws.SetReadDeadline)
	return a, nil
}

// then waits up to a second, after a refusing CONNACK, for the server to end
// the connection, and returns how it did.
func then(a Answer, r *bufio.Reader, setDeadline func(time.Time) error) error {
	if code, ok := a.Connack(); a.Err != nil || !ok || code == 0 {
		return nil
	}
	_ = setDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadByte(); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
	return errors.New("the server sent more after its refusing CONNACK")
}

// maxProbePacket bounds what readPacket accepts: a CONNACK is a few bytes.
const maxProbePacket = 64 << 10

// readPacket reads one MQTT packet: fixed header, remaining length, body.
func readPacket(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{first}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return pkt, err
		}
		pkt = append(pkt, b)
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return pkt, errors.New("malformed remaining length")
		}
	}
	if n > maxProbePacket {
		return pkt, fmt.Errorf("packet of %d bytes is over the probe's %d", n, maxProbePacket)
	}
	body := make([]byte, n)
	k, err := io.ReadFull(r, body)
	return append(pkt, body[:k]...), err
}
