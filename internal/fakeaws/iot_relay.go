package fakeaws

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	dialTimeout    = 5 * time.Second  // to the upstream broker
	connectTimeout = 10 * time.Second // for CONNECT in CloseAfterConnect mode
	relayBuf       = 32 << 10
)

// relayConn is one accepted connection: the client's WebSocket and, once
// dialled, the upstream TCP connection. close may be called from anywhere,
// any number of times.
type relayConn struct {
	ws *websocket.Conn

	mu     sync.Mutex
	up     net.Conn
	closed bool
}

// close drops both sides; it reports whether this call closed them.
func (c *relayConn) close() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	_ = c.ws.Close() // closes the TCP connection, no close frame: a dropped link
	if c.up != nil {
		_ = c.up.Close()
	}
	return true
}

// setUpstream attaches up; false (and up closed) when c is already closed.
func (c *relayConn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = up.Close()
		return false
	}
	c.up = up
	return true
}

// relay runs an accepted connection until either side ends it. It runs on
// the HTTP handler's goroutine and waits for the one goroutine it starts.
func (f *IoT) relay(c *relayConn, idx int, closeAfterConnect bool) {
	if closeAfterConnect {
		f.readConnectAndClose(c, idx)
		return
	}
	if f.up == "" {
		f.t.Logf("fakeaws iot: no upstream configured; closing the accepted connection")
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "fakeaws: no upstream"), time.Now().Add(time.Second))
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(f.ctx, "tcp", f.up)
	if err != nil {
		f.t.Logf("fakeaws iot: dial upstream %s: %v", f.up, err)
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "fakeaws: upstream unreachable"), time.Now().Add(time.Second))
		return
	}
	if !c.setUpstream(up) {
		return
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // upstream → client
		defer wg.Done()
		defer c.close()
		buf := make([]byte, relayBuf)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if werr := c.ws.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// client → upstream
	var sn connectSniffer
	for {
		mt, rd, err := c.ws.NextReader()
		if err != nil {
			break
		}
		if mt != websocket.BinaryMessage { // [MQTT-6.0.0-1] MQTT travels in binary frames only
			f.t.Logf("fakeaws iot: client sent a non-binary WebSocket frame; closing")
			break
		}
		data, err := io.ReadAll(rd)
		if err != nil {
			break
		}
		if id, done, err := sn.feed(data); done {
			if err != nil {
				f.t.Logf("fakeaws iot: first MQTT packet: %v", err)
			}
			f.update(idx, func(a *Attempt) { a.ClientID = id })
		}
		if _, err := up.Write(data); err != nil {
			break
		}
	}
	c.close()
	wg.Wait()
}

// readConnectAndClose waits for the client's CONNECT and then drops the
// connection without answering, like AWS IoT for an unauthorized identity.
func (f *IoT) readConnectAndClose(c *relayConn, idx int) {
	_ = c.ws.SetReadDeadline(time.Now().Add(connectTimeout))
	var sn connectSniffer
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			f.t.Logf("fakeaws iot: waiting for CONNECT: %v", err)
			return
		}
		if mt != websocket.BinaryMessage {
			return
		}
		id, done, err := sn.feed(data)
		if !done {
			continue
		}
		if err != nil {
			f.t.Logf("fakeaws iot: first MQTT packet: %v", err)
		}
		f.update(idx, func(a *Attempt) { a.ClientID, a.ClosedAfterConnect = id, true })
		c.close()
		return
	}
}
