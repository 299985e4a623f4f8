package devbroker

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edge-agent/edge-agent/internal/wsstream"
)

// wsListener is a mochi listener for MQTT over WebSocket on path /mqtt. Unlike mochi's own, it binds
// before Serve (so port 0 works), serves only /mqtt, supports TLS and waits for its handlers on Close.
type wsListener struct {
	id  string
	ln  net.Listener
	srv *http.Server
	tls bool
	log *slog.Logger

	wg       sync.WaitGroup // one per upgraded connection
	closeMu  sync.Mutex
	closed   bool
	serveEnd chan struct{}
}

func newWSListener(id, addr string, tlsCfg *tls.Config) (*wsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &wsListener{id: id, ln: ln, serveEnd: make(chan struct{})}
	if tlsCfg != nil {
		l.ln = tls.NewListener(ln, tlsCfg)
		l.tls = true
	}
	return l, nil
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return map[bool]string{false: "ws", true: "wss"}[l.tls] }

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	defer close(l.serveEnd)
	up := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", func(w http.ResponseWriter, r *http.Request) {
		l.closeMu.Lock()
		if l.closed {
			l.closeMu.Unlock()
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		l.wg.Add(1)
		l.closeMu.Unlock()
		defer l.wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &serverConn{Conn: ws.NetConn(), ws: ws, rd: wsstream.Reader{WS: ws}}
		defer c.Close()
		_ = establish(l.id, c)
	})
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug)}
	l.closeMu.Lock()
	closed := l.closed
	srv := l.srv
	l.closeMu.Unlock()
	if closed {
		return
	}
	_ = srv.Serve(l.ln)
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeMu.Lock()
	already := l.closed
	l.closed = true
	srv := l.srv
	l.closeMu.Unlock()
	if already {
		return
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	_ = l.ln.Close()
	closeClients(l.id)
	l.wg.Wait()
}

// serverConn presents a server-side WebSocket as a byte stream. mochi serialises its own writes; the
// mutex keeps that true even if it ever did not.
type serverConn struct {
	net.Conn // the raw connection, for deadlines, addresses and Close
	ws       *websocket.Conn
	wmu      sync.Mutex
	rd       wsstream.Reader
}

func (c *serverConn) Read(p []byte) (int, error) { return c.rd.Read(p) }

func (c *serverConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
