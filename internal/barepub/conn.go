package barepub

import (
	"bytes"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/wsstream"
)

// wsConn is the usual WebSocket-as-net.Conn adapter of paho users (as in autopaho): reads run across
// message boundaries; paho takes the lock (sync.Locker) around the writes of one packet, and the bytes
// written under it go out as one binary message.
type wsConn struct {
	ws  *websocket.Conn
	rd  wsstream.Reader
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *wsConn) Lock() { c.mu.Lock() }

func (c *wsConn) Unlock() {
	if c.buf.Len() > 0 {
		_ = c.ws.WriteMessage(websocket.BinaryMessage, c.buf.Bytes()) // an error shows on the next Read
		c.buf.Reset()
	}
	c.mu.Unlock()
}

// Write is only called by paho between Lock and Unlock.
func (c *wsConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

func (c *wsConn) Read(p []byte) (int, error) { return c.rd.Read(p) }

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.ws.SetReadDeadline(t)
	return c.ws.SetWriteDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
