package wsproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Connect is what one relayed CONNECT said.
type Connect struct {
	ProtocolName  string // "MQIsdp" for 3.1, "MQTT" for 3.1.1 and 5
	ProtocolLevel byte   // 3, 4 or 5
}

// Proxy is a running endpoint.
type Proxy struct {
	target       string
	subprotocols []string
	srv          *httptest.Server
	upgrader     websocket.Upgrader

	mu       sync.Mutex
	conns    map[io.Closer]struct{}
	connects []Connect
	refused  int
	closed   bool
	wg       sync.WaitGroup
}

// Start serves ws://127.0.0.1:PORT/mqtt, accepting only upgrades that offer one of
// subprotocols (default: "mqttv3.1"), and relays each connection to the broker at
// tcpAddr. A t.Cleanup closes it.
func Start(t testing.TB, tcpAddr string, subprotocols ...string) *Proxy {
	t.Helper()
	if len(subprotocols) == 0 {
		subprotocols = []string{"mqttv3.1"}
	}
	p := &Proxy{target: tcpAddr, subprotocols: subprotocols, conns: map[io.Closer]struct{}{}}
	p.upgrader = websocket.Upgrader{
		Subprotocols:    subprotocols,
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  16 << 10,
		WriteBufferSize: 16 << 10,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// URL is the endpoint: ws://127.0.0.1:PORT/mqtt.
func (p *Proxy) URL() string { return "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/mqtt" }

// Connects returns the CONNECTs relayed so far, in order.
func (p *Proxy) Connects() []Connect {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.connects)
}

// Refused is how many upgrades were refused for their subprotocols.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Close stops accepting, closes every relayed connection and waits for their
// goroutines. Idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.srv.Close()
	p.wg.Wait()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/mqtt" {
		http.Error(w, "MQTT over WebSocket is at /mqtt", http.StatusNotFound)
		return
	}
	offered := websocket.Subprotocols(r)
	if !slices.ContainsFunc(offered, func(s string) bool { return slices.Contains(p.subprotocols, s) }) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		http.Error(w, fmt.Sprintf("this server speaks MQTT over WebSocket only with the subprotocol %s (offered: %q)",
			strings.Join(p.subprotocols, " or "), offered), http.StatusBadRequest)
		return
	}
	ws, err := p.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	broker, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "broker unreachable"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	if !p.track(ws, broker) {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.toClient(ws, broker)
	}()
	p.toBroker(ws, broker)
	p.untrack(ws, broker)
}

// track registers a relayed connection's two ends; false (both closed) once the
// proxy is closing.
func (p *Proxy) track(ws *websocket.Conn, broker net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = ws.Close()
		_ = broker.Close()
		return false
	}
	p.wg.Add(1) // the handler's own relay direction, done in untrack
	p.conns[ws] = struct{}{}
	p.conns[broker] = struct{}{}
	return true
}

func (p *Proxy) untrack(ws *websocket.Conn, broker net.Conn) {
	p.mu.Lock()
	delete(p.conns, ws)
	delete(p.conns, broker)
	p.mu.Unlock()
	p.wg.Done()
}

// toBroker copies the client's binary messages to the broker until either side
// ends, then closes both.
func (p *Proxy) toBroker(ws *websocket.Conn, broker net.Conn) {
	defer ws.Close()
	defer broker.Close()
	first := true
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if first {
			p.noteConnect(data)
			first = false
		}
		if _, err := broker.Write(data); err != nil {
			return
		}
	}
}

// toClient copies the broker's bytes to the client as binary messages until
// either side ends, then closes both.
func (p *Proxy) toClient(ws *websocket.Conn, broker net.Conn) {
	defer ws.Close()
	defer broker.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := broker.Read(buf)
		if n > 0 {
			if werr := ws.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// noteConnect records the protocol name and level of a CONNECT at the start of
// the client's first message. [MQTT-3.1.2-1], [MQTT-3.1.2-2]
func (p *Proxy) noteConnect(data []byte) {
	if len(data) < 2 || data[0] != 0x10 {
		return
	}
	i := 1
	for i < len(data) && i < 5 && data[i]&0x80 != 0 { // remaining length
		i++
	}
	i++
	if i+2 > len(data) {
		return
	}
	n := int(data[i])<<8 | int(data[i+1])
	i += 2
	if i+n >= len(data) {
		return
	}
	c := Connect{ProtocolName: string(data[i : i+n]), ProtocolLevel: data[i+n]}
	p.mu.Lock()
	p.connects = append(p.connects, c)
	p.mu.Unlock()
}
