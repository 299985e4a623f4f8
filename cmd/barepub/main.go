package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "barepub: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("barepub", flag.ContinueOnError)
	url := fs.String("url", "", "broker WebSocket URL, ws://host:port/mqtt")
	n := fs.Int("n", 10000, "messages")
	topic := fs.String("topic", "bench/bare", "topic")
	size := fs.Int("size", 200, "payload bytes")
	tag := fs.String("tag", "bare", "payload prefix (makes runs distinct)")
	window := fs.Int("window", 0, "unacknowledged QoS 1 messages at most; 0 = the broker's Receive Maximum")
	clientID := fs.String("id", fmt.Sprintf("barepub-%d", os.Getpid()), "MQTT client id")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *n < 1 {
		return errors.New("-url and -n >= 1 are required")
	}
	payloads := make([][]byte, *n)
	for i := range payloads {
		b := fmt.Appendf(nil, "%s-%08d-", *tag, i+1)
		if len(b) > *size {
			return fmt.Errorf("-size %d is too small for %q", *size, b)
		}
		payloads[i] = append(b, bytes.Repeat([]byte("."), *size-len(b))...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10,
		HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, *url, nil)
	if err != nil {
		return fmt.Errorf("websocket dial %s: %w", *url, err)
	}
	conn := &wsConn{ws: ws}
	cli := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: *clientID, CleanStart: true, KeepAlive: 30})
	if err != nil {
		_ = ws.Close()
		return fmt.Errorf("CONNECT to %s: %w", *url, err)
	}
	connack := time.Now()
	if ca.ReasonCode != 0 {
		_ = ws.Close()
		return fmt.Errorf("CONNACK reason code %#x from %s", ca.ReasonCode, *url)
	}
	recvMax := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		recvMax = int(*ca.Properties.ReceiveMaximum)
	}
	w := *window
	if w <= 0 {
		w = recvMax
	}
	w = min(w, recvMax, *n)

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, w)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(payloads) {
					return
				}
				pr, err := cli.Publish(ctx, &paho.Publish{Topic: *topic, QoS: 1, Payload: payloads[i]})
				if err == nil && pr != nil && pr.ReasonCode >= 0x80 {
					err = fmt.Errorf("PUBACK reason code %#x", pr.ReasonCode)
				}
				if err != nil {
					errs <- fmt.Errorf("message %d of %d: %w", i+1, len(payloads), err)
					next.Store(int64(len(payloads))) // stop the other workers
					return
				}
			}
		}()
	}
	wg.Wait()
	done := time.Now()
	_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	_ = ws.Close()
	<-cli.Done()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Fprintf(stdout, "connack_ns=%d done_ns=%d window=%d receive_maximum=%d\n",
		connack.UnixNano(), done.UnixNano(), w, recvMax)
	return nil
}

// wsConn adapts a WebSocket to the byte stream paho expects. paho writes each packet inside
// Lock/Unlock (packets.ControlPacket.WriteTo checks for sync.Locker); the bytes written in between
// go out as ONE binary WebSocket message at Unlock, as the agent's transport sends them, so the
// anchor pays the same framing cost per packet. Reads cross message boundaries.
type wsConn struct {
	ws *websocket.Conn

	wmu  sync.Mutex
	wbuf []byte
	werr error

	r io.Reader // current message; guarded by the single reader (paho's read loop)
}

func (c *wsConn) Lock() { c.wmu.Lock() }

func (c *wsConn) Unlock() {
	if len(c.wbuf) > 0 && c.werr == nil {
		c.werr = c.ws.WriteMessage(websocket.BinaryMessage, c.wbuf)
	}
	c.wbuf = c.wbuf[:0]
	c.wmu.Unlock()
}

// Write must be called between Lock and Unlock (paho does so for every packet).
func (c *wsConn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket message type %d, want binary [MQTT-6.0.0-1]", typ)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
