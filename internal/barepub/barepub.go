package barepub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/wsstream"
)

// Options describe one run.
type Options struct {
	URL      string // ws://host:port/path of the broker
	ClientID string
	Window   int    // QoS 1 publishes outstanding at most (workers, each waiting for its PUBACK); 0 = the broker's Receive Maximum
	Topic    string // every message goes to this topic
	Payloads [][]byte
}

// Result of a run.
type Result struct {
	Sent     int
	Elapsed  time.Duration // from the first PUBLISH to the last PUBACK
	Start    time.Time     // when the first PUBLISH was handed to paho (CONNACK is just before it)
	Done     time.Time     // when the last PUBACK arrived
	Window   int           // the window used
	RecvMax  uint16        // the broker's Receive Maximum (0: not announced, 65535 by default)
	PerSec   float64
	Failures int // publishes that got an error (reason code >= 0x80 or a lost connection)
}

// Run connects, publishes every payload once at QoS 1 with Window workers, waits for every PUBACK,
// disconnects and reports the rate. The connection's set-up is not part of Elapsed.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Window < 0 {
		return Result{}, fmt.Errorf("barepub: Window %d: use 0 (the broker's Receive Maximum) or more", o.Window)
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return Result{}, fmt.Errorf("barepub: broker URL %q: %w", o.URL, err)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"mqtt"}}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, _, err := d.DialContext(dctx, u.String(), nil)
	if err != nil {
		return Result{}, fmt.Errorf("barepub: websocket dial %s: %w", o.URL, err)
	}
	conn := &wsConn{ws: ws, rd: wsstream.Reader{WS: ws}}
	cli := paho.NewClient(paho.ClientConfig{ClientID: o.ClientID, Conn: conn})
	ca, err := cli.Connect(dctx, &paho.Connect{ClientID: o.ClientID, KeepAlive: 60, CleanStart: true})
	if err != nil {
		_ = ws.Close()
		return Result{}, fmt.Errorf("barepub: connect %s: %w", o.URL, err)
	}
	defer func() { _ = cli.Disconnect(&paho.Disconnect{}) }()
	recvMax := uint16(65535)
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		recvMax = *ca.Properties.ReceiveMaximum
	}
	if o.Window == 0 || o.Window > int(recvMax) {
		o.Window = int(recvMax)
	}
	o.Window = max(1, min(o.Window, len(o.Payloads)))

	next := make(chan []byte, o.Window)
	var failures atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range o.Window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				pr, err := cli.Publish(ctx, &paho.Publish{Topic: o.Topic, QoS: 1, Payload: p})
				if err == nil && pr != nil && pr.ReasonCode >= 0x80 {
					err = fmt.Errorf("PUBACK reason code %#x", pr.ReasonCode)
				}
				if err != nil {
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
feed:
	for _, p := range o.Payloads {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	done := time.Now()
	el := done.Sub(start)
	res := Result{Sent: len(o.Payloads), Elapsed: el, Start: start, Done: done, Window: o.Window, RecvMax: recvMax,
		Failures: int(failures.Load()), PerSec: float64(len(o.Payloads)) / el.Seconds()}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if firstErr != nil {
		return res, fmt.Errorf("barepub: %d of %d publishes failed, the first: %w", res.Failures, res.Sent, firstErr)
	}
	if res.Failures > 0 {
		return res, errors.New("barepub: publishes failed")
	}
	return res, nil
}
