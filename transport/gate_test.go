package transport

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// gateOptions shapes a versionGate: a WebSocket endpoint in front of a real broker's plain TCP port
// (Mosquitto) that makes it look like a broker that does not speak every MQTT version.
type gateOptions struct {
	// refuse: what the gate does with a CONNECT whose protocol level is in refuseLevels:
	// "rc1" answers a 3.1.1-style CONNACK with return code 1 (as Aedes 1.x does to MQTT 5) and closes;
	// "close1011" closes the WebSocket with status 1011 before any CONNACK (as RabbitMQ 3.10 does).
	refuse       string
	refuseLevels []byte
	// demand: refuse the upgrade (HTTP 400 with an HTML page) unless the client offers this subprotocol.
	demand string
	// hangUpOn: a PUBLISH on this topic makes the gate close the WebSocket without passing it on (a
	// broker that refuses a message by disconnecting, as a 3.x broker must).
	hangUpOn string
}

type versionGate struct {
	opts    gateOptions
	target  string
	ln      net.Listener
	srv     *http.Server
	wg      sync.WaitGroup
	levels  sync.Map // protocol level -> count of CONNECTs seen
	hangUps atomic.Int32
	subs    sync.Map // subprotocol -> count of upgrades
}

func startGate(t testing.TB, target string, opts gateOptions) *versionGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &versionGate{opts: opts, target: target, ln: ln}
	g.srv = &http.Server{Handler: http.HandlerFunc(g.serve), ReadHeaderTimeout: 5 * time.Second}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = g.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = g.srv.Close()
		g.wg.Wait()
	})
	return g
}

func (g *versionGate) URL() string { return "ws://" + g.ln.Addr().String() + "/mqtt" }

func (g *versionGate) count(m *sync.Map, k any) int {
	v, _ := m.Load(k)
	n, _ := v.(int)
	return n
}

func (g *versionGate) bump(m *sync.Map, k any) {
	for {
		v, loaded := m.LoadOrStore(k, 1)
		if !loaded || m.CompareAndSwap(k, v, v.(int)+1) {
			return
		}
	}
}

func (g *versionGate) serve(w http.ResponseWriter, r *http.Request) {
	if g.opts.demand != "" && !slices.Contains(websocket.Subprotocols(r), g.opts.demand) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><head><title>400 Bad Request: subprotocol " + g.opts.demand +
			" required</title><style>body{font-family:sans-serif}</style></head>\n<body><h1>Bad Request</h1><p>" +
			strings.Repeat("This server only speaks MQTT 3.1. ", 20) + "</p></body></html>"))
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt", "mqttv3.1"}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	g.bump(&g.subs, ws.Subprotocol())
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.relay(ws)
	}()
}

// relay serves one connection: it reads the CONNECT, refuses it or passes everything on to the target.
func (g *versionGate) relay(ws *websocket.Conn) {
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, first, err := ws.ReadMessage()
	if err != nil || len(first) < 9 || first[0]>>4 != 1 {
		return
	}
	hdr, _, ok, _ := parseFixedHeader(first)
	if !ok {
		return
	}
	nameLen := int(first[hdr])<<8 | int(first[hdr+1])
	level := first[hdr+2+nameLen]
	g.bump(&g.levels, level)
	if slices.Contains(g.opts.refuseLevels, level) {
		switch g.opts.refuse {
		case "rc1":
			_ = ws.WriteMessage(websocket.BinaryMessage, []byte{0x20, 2, 0, 1})
		case "close1011":
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, ""),
				time.Now().Add(time.Second))
		}
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	tcp, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer tcp.Close()
	stop := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(stop); _ = tcp.Close(); _ = ws.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // broker -> client
		defer wg.Done()
		defer end()
		buf := make([]byte, 32<<10)
		for {
			n, err := tcp.Read(buf)
			if n > 0 && ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // client -> broker, packet by packet
		defer wg.Done()
		defer end()
		var stream []byte
		msg := first
		for {
			stream = append(stream, msg...)
			for {
				hdr, rem, ok, err := parseFixedHeader(stream)
				if err != nil {
					return
				}
				if !ok || len(stream) < hdr+rem {
					break
				}
				pkt := stream[:hdr+rem]
				if g.opts.hangUpOn != "" && pkt[0]>>4 == typePublish && rem >= 2 {
					tl := int(pkt[hdr])<<8 | int(pkt[hdr+1])
					if hdr+2+tl <= len(pkt) && string(pkt[hdr+2:hdr+2+tl]) == g.opts.hangUpOn {
						g.hangUps.Add(1)
						_ = ws.WriteControl(websocket.CloseMessage,
							websocket.FormatCloseMessage(websocket.CloseNormalClosure, "refused"), time.Now().Add(time.Second))
						return
					}
				}
				if _, err := tcp.Write(pkt); err != nil {
					return
				}
				stream = bytes.Clone(stream[hdr+rem:])
			}
			var err error
			if _, msg, err = ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	wg.Wait()
}
