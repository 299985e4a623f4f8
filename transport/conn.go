package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// dialWebSocket opens a WebSocket to a ws:// or wss:// URL with the given subprotocol ("mqtt", or
// "mqttv3.1" for MQTT 3.1) and wraps it in a net.Conn. The handshake is bounded by timeout and ctx. Errors name the URL without its query string.
//
// maxPacket bounds every inbound MQTT packet (see inboundGuard); 0 = no bound (tests only).
func dialWebSocket(ctx context.Context, rawURL string, header http.Header, tlsCfg *tls.Config, timeout, writeTimeout time.Duration, maxPacket int, subprotocol string) (*wsConn, error) {
	u, err := parseBrokerURL(rawURL)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: timeout,
		Subprotocols:     []string{subprotocol},
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	if u.Scheme == "wss" {
		if tlsCfg != nil {
			d.TLSClientConfig = tlsCfg.Clone()
		} else {
			d.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12} // system roots, verified
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, resp, err := d.DialContext(ctx, u.String(), header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			return nil, &HandshakeError{URL: redactURL(u), StatusCode: resp.StatusCode, Header: resp.Header,
				Body: sanitizeBody(body), Err: err}
		}
		return nil, fmt.Errorf("websocket dial %s: %w", redactURL(u), err)
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return newWSConn(ws, writeTimeout, maxPacket), nil
}

// wsConn adapts a WebSocket to the byte stream net.Conn that paho expects.
//
// Reads: MQTT packets may span or share WebSocket messages; Read returns bytes across message
// boundaries. Only binary messages are accepted [MQTT-6.0.0-1]. Every byte passes an inboundGuard
// (inbound.go), so paho never sees the header of a packet over maxPacket: an oversized PUBLISH is
// drained unread and answered here (PUBACK 0x97 for QoS 1, PUBREC 0x80 for QoS 2, written under the
// write lock like any packet) so the broker's flow-control window is released and the link stays up;
// any other oversized or malformed packet fails the read, and wsConn sends DISCONNECT (0x95 packet too
// large, 0x81 malformed packet) best effort and closes.
//
// No gorilla read limit (SetReadLimit) is set: a limit per WebSocket message could break legitimate
// traffic (a broker may pack many small MQTT packets into one message, and WebSocket framing is not
// MQTT framing), and it would turn a retained oversized message into a disconnect on every subscribe.
// It is not needed for memory either: gorilla streams a message's frames through its fixed read buffer
// (NextReader) and never holds a whole message; the MQTT-level bound is the guard's.
//
// Writes: wsConn implements sync.Locker. paho writes every packet through packets.ControlPacket.WriteTo,
// which takes the lock, writes the fixed header and the body in several Write calls and unlocks. While
// locked, Write collects the bytes and sends each complete MQTT packet as ONE binary message, so packets
// from concurrent writers (sender, pinger, PUBACKs from the reader) never interleave, and a failed send is
// reported to the Write call that completed the packet. Every Write must happen between Lock and Unlock.
// A failed write is sticky: later writes fail with the same error and the socket is closed so the reader
// notices at once.
//
// Coalescing: between cork and flush, complete packets are held and go out together as one binary
// message (one frame, one write system call) at flush, or as soon as corkBytes are held. MQTT over
// WebSocket lets one message carry several packets [MQTT-6.0.0-2]. The sender corks while it has
// messages ready and window slots free, and flushes before anything that could wait (see send), so a
// packet is never held while the sender waits; a packet of another writer written meanwhile (a ping, a
// PUBACK) goes out with the run. A failed flush is reported like a failed write: sticky, socket closed.
type wsConn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration

	wmu    sync.Mutex // the Locker: one packet at a time
	wbuf   []byte     // complete packets held by the cork, then the packet being assembled (guarded by wmu)
	whole  int        // wbuf[:whole] is complete packets (guarded by wmu)
	corked bool       // hold complete packets until flush or corkBytes (guarded by wmu)
	werr   error      // sticky write error (guarded by wmu)

	rmu     sync.Mutex    // guards r, guard and refused
	r       io.Reader     // current message being read
	guard   *inboundGuard // nil = no bound
	refused bool          // DISCONNECT for an oversized/malformed packet already sent

	// Set before the first Read (paho starts reading in Connect), never changed after.
	onTooLarge func(tooLargePacket) // an inbound packet over maxPacket (discarded PUBLISH or refused)
	onProgress func()               // bytes of an oversized PUBLISH keep arriving (keepalive)
	mqtt3      bool                 // MQTT 3.x: acknowledgements and DISCONNECT carry no reason code

	errMu    sync.Mutex
	firstErr error // first read or write failure, for diagnostics
	readErr  error // first read failure (tells a broker hang-up from our own close)
	head     [4]byte
	headN    int // the first headN (<= 4) bytes received are in head (see connack3)

	closeOnce sync.Once
	closeErr  error
}

var errNonBinary = errors.New("websocket: broker sent a non-binary message (MQTT needs binary frames)")

func newWSConn(ws *websocket.Conn, writeTimeout time.Duration, maxPacket int) *wsConn {
	c := &wsConn{ws: ws, writeTimeout: writeTimeout}
	if maxPacket > 0 {
		g := newInboundGuard(readerFunc(c.readRaw), maxPacket)
		g.tooLarge = func(ev tooLargePacket) {
			if c.onTooLarge != nil {
				c.onTooLarge(ev)
			}
		}
		g.progress = func() {
			if c.onProgress != nil {
				c.onProgress()
			}
		}
		g.drained = c.answerDiscarded
		c.guard = g
	}
	return c
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// answerDiscarded answers an oversized PUBLISH that was drained unread, so that the broker releases
// its slot in our Receive Maximum and does not resend it [MQTT-4.3.2], [MQTT-4.3.3]. QoS 0 needs no
// answer.
func (c *wsConn) answerDiscarded(ev tooLargePacket) error {
	var pkt []byte
	switch ev.QoS {
	case 1: // PUBACK, reason 0x97 quota exceeded (no properties: remaining length 3 [MQTT-3.4.2.1])
		pkt = []byte{typePuback << 4, 3, byte(ev.PacketID >> 8), byte(ev.PacketID), 0x97}
	case 2: // PUBREC 0x80 unspecified error: a reason >= 0x80 ends the QoS 2 exchange
		pkt = []byte{typePubrec << 4, 3, byte(ev.PacketID >> 8), byte(ev.PacketID), 0x80}
	default:
		return nil
	}
	if c.mqtt3 { // 3.x has no reason codes: a plain PUBACK; PUBREC so the broker sends PUBREL and moves on
		pkt = pkt[:4]
		pkt[1] = 2
	}
	return c.writePacket(pkt)
}

// writePacket writes one whole MQTT packet under the write lock.
func (c *wsConn) writePacket(pkt []byte) error {
	c.Lock()
	defer c.Unlock()
	_, err := c.Write(pkt)
	return err
}

func (c *wsConn) Lock()   { c.wmu.Lock() }
func (c *wsConn) Unlock() { c.flushLeftover(); c.wmu.Unlock() }

// corkBytes bounds the packets held by the cork: gorilla sends a message up to its 16 KiB write buffer as
// one frame, and a run of that size already makes the write's cost per packet small.
const corkBytes = 15 << 10

// Write must be called with the lock held (see the type comment).
func (c *wsConn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	c.wbuf = append(c.wbuf, p...)
	for {
		n, ok := packetLen(c.wbuf[c.whole:])
		if !ok || len(c.wbuf)-c.whole < n {
			break
		}
		c.whole += n
	}
	if c.whole > 0 && (!c.corked || c.whole >= corkBytes) {
		if err := c.send(c.whole); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// cork makes the complete packets written from now on wait for flush (or corkBytes).
func (c *wsConn) cork() {
	c.wmu.Lock()
	c.corked = true
	c.wmu.Unlock()
}

// flush ends a cork: the packets it holds go out as one message. It returns the sticky write error.
func (c *wsConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.corked = false
	if c.werr == nil && c.whole > 0 {
		_ = c.send(c.whole)
	}
	return c.werr
}

// flushLeftover runs at Unlock: without a cork it sends bytes that did not form a complete packet
// (defensive; paho always writes whole packets inside one Lock/Unlock).
func (c *wsConn) flushLeftover() {
	if len(c.wbuf) > c.whole && c.werr == nil {
		_ = c.send(len(c.wbuf))
	}
	if c.werr != nil {
		c.wbuf, c.whole = c.wbuf[:0], 0
	}
}

// send writes wbuf[:n] as one binary message and keeps the rest. Caller holds wmu.
func (c *wsConn) send(n int) error {
	if c.writeTimeout > 0 {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	err := c.ws.WriteMessage(websocket.BinaryMessage, c.wbuf[:n])
	rest := copy(c.wbuf, c.wbuf[n:])
	c.wbuf, c.whole = c.wbuf[:rest], max(c.whole-n, 0)
	if cap(c.wbuf) > 1<<20 && rest == 0 {
		c.wbuf = nil // do not pin a huge buffer after one large message
	}
	if err != nil {
		c.werr = fmt.Errorf("websocket write: %w", err)
		c.noteErr(c.werr)
		_ = c.ws.NetConn().Close() // wake the reader so paho notices now
		return c.werr
	}
	return nil
}

// packetLen returns the total length of the MQTT packet at the start of b (fixed header byte, Variable
// Byte Integer remaining length, body) once the header is complete. The header is read by the same
// parser as inbound packets (parseFixedHeader, inbound.go).
func packetLen(b []byte) (int, bool) {
	hdr, rem, ok, err := parseFixedHeader(b)
	if !ok || err != nil {
		return 0, false
	}
	return hdr + rem, true
}

// Read implements net.Conn for paho's reader: whole packets within the bound, never an oversized header.
func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.guard == nil {
		return c.readRaw(p)
	}
	n, err := c.guard.Read(p)
	if err != nil {
		c.noteErr(err)
		if !c.refused {
			code := byte(0)
			switch {
			case errors.Is(err, ErrPacketTooLarge):
				code = 0x95 // packet too large
			case errors.Is(err, errMalformed):
				code = 0x81 // malformed packet
			}
			if code != 0 {
				c.refused = true
				disconnect := []byte{0xE0, 1, code} // DISCONNECT with a reason code, best effort
				if c.mqtt3 {
					disconnect = []byte{0xE0, 0}
				}
				_ = c.writePacket(disconnect)
				_ = c.Close()
			}
		}
	}
	return n, err
}

// readRaw returns the bytes of the WebSocket stream across message boundaries. Caller holds rmu.
func (c *wsConn) readRaw(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.noteReadErr(fmt.Errorf("websocket read: %w", err))
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				c.noteReadErr(errNonBinary)
				return 0, errNonBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if n > 0 {
			c.noteHead(p[:n])
		}
		if err == io.EOF {
			c.r = nil // end of this message; continue with the next one
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			c.noteReadErr(fmt.Errorf("websocket read: %w", err))
		}
		return n, err
	}
}

// noteHead keeps the first bytes received.
func (c *wsConn) noteHead(b []byte) {
	c.errMu.Lock()
	if c.headN < len(c.head) {
		c.headN += copy(c.head[c.headN:], b)
	}
	c.errMu.Unlock()
}

// connack3 reports whether the first packet received was a 3.1.1/3.1-style CONNACK (remaining length 2;
// an MQTT 5 CONNACK has at least 3) with a non-zero return code: a 3.x broker refusing our MQTT 5
// CONNECT. paho.golang cannot decode it (it reads it as MQTT 5 and fails), so it is read from here.
func (c *wsConn) connack3() (rc byte, ok bool) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.headN == len(c.head) && c.head[0] == 0x20 && c.head[1] == 2 && c.head[3] != 0 {
		return c.head[3], true
	}
	return 0, false
}

// received reports whether any byte arrived on the connection.
func (c *wsConn) received() bool {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.headN > 0
}

func (c *wsConn) noteReadErr(err error) {
	c.errMu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.errMu.Unlock()
	c.noteErr(err)
}

// hungUp reports whether the first read failure shows the broker ending the connection: a WebSocket
// close frame or the end of the TCP stream (gorilla reports both as *websocket.CloseError; EOF is code
// 1006). A reset, a timeout, or our own close (net.ErrClosed after a failed write, the keepalive pinger
// or shutdown) is not a hang-up.
//
// A reset can also look like the end of the stream: Linux reports a connection reset once, to whichever
// call comes first, so when a write takes the ECONNRESET the reader then sees EOF. An EOF (or close code
// 1006) read while a write failed with ECONNRESET is therefore a reset, not a hang-up. (A broker that
// closes without a close frame and resets our next write is then found later or not at all: a missed
// poison message is retried, a good one wrongly dead-lettered would be lost to the stream.)
func (c *wsConn) hungUp() bool {
	c.errMu.Lock()
	err := c.readErr
	c.errMu.Unlock()
	if err == nil {
		return false
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		return true // a close frame: the broker's own word
	}
	if !errors.As(err, &ce) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	c.wmu.Lock()
	werr := c.werr
	c.wmu.Unlock()
	return !errors.Is(werr, syscall.ECONNRESET)
}

func (c *wsConn) noteErr(err error) {
	c.errMu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.errMu.Unlock()
}

// Err returns the first read or write failure seen on the connection, or nil.
func (c *wsConn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.firstErr
}

// writeFailed reports whether any write has failed.
func (c *wsConn) writeFailed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.werr != nil
}

// Close sends a best-effort WebSocket close frame and closes the socket. Safe to call more than once.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(250*time.Millisecond))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

var (
	_ net.Conn    = (*wsConn)(nil)
	_ sync.Locker = (*wsConn)(nil)
)

// maxBodyInError bounds the part of a refused upgrade's body kept in HandshakeError.Body.
const maxBodyInError = 200

// sanitizeBody makes an HTTP error body fit for a log line: printable, one line, short. An HTML page
// (a proxy's or a web server's error page) is cut down to its text: its <title> when it has one, else
// the text between its tags.
func sanitizeBody(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, string(b))
	if lower := strings.ToLower(s); strings.Contains(lower, "<html") || strings.Contains(lower, "<!doctype") {
		if i := strings.Index(lower, "<title>"); i >= 0 {
			if j := strings.Index(lower[i:], "</title>"); j > 0 {
				s = s[i+len("<title>") : i+j]
			}
		}
		s = stripTags(s)
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxBodyInError {
		cut := maxBodyInError
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// stripTags drops everything between '<' and '>'.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
