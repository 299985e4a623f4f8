package fakeaws

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultIoTRegion is the region an IoT fake serves unless IoTOptions.Region
// says otherwise; it is the region of NewCognito's identity pool.
const DefaultIoTRegion = "eu-west-1"

// IoTOptions configure NewIoT.
type IoTOptions struct {
	// Upstream is the host:port of a real broker's plain MQTT/TCP listener
	// that accepted connections are relayed to. Empty: an accepted connection
	// is closed (WebSocket close 1011) right after the upgrade.
	Upstream string
	// Region the endpoint serves; a URL signed for another region is
	// refused. Default DefaultIoTRegion.
	Region string
	// Creds is the registry of accepted credentials, to share one between
	// fakes. Nil: a new, empty store (see AllowCredentials).
	Creds *CredStore
	// MaxSkew is how far X-Amz-Date may be from the fake's clock.
	// Default 5 minutes, as AWS.
	MaxSkew time.Duration
}

// Attempt is one WebSocket upgrade request the fake answered.
type Attempt struct {
	Time        time.Time // the fake's clock when the request arrived
	RemoteAddr  string
	AccessKeyID string    // from X-Amz-Credential, if it got that far
	Region      string    // from the credential scope
	Service     string    // from the credential scope
	SignedAt    time.Time // X-Amz-Date
	Token       bool      // an X-Amz-Security-Token was presented
	Accepted    bool      // 101 Switching Protocols
	Reason      string    // one of the Reason… constants; "" when accepted
	Message     string    // the message of the 403 body
	// ClientID is the client id of the first MQTT CONNECT seen on an
	// accepted connection ("" until then).
	ClientID string
	// ClosedAfterConnect reports that the fake closed the connection after
	// reading CONNECT, because CloseAfterConnect was on.
	ClosedAfterConnect bool
}

// IoT is a fake AWS IoT Core MQTT-over-WebSocket endpoint; see the package
// documentation. Create it with NewIoT.
type IoT struct {
	t       testing.TB
	srv     *httptest.Server
	ca      *CA
	caFile  string
	region  string
	maxSkew time.Duration
	creds   *CredStore
	up      string
	ctx     context.Context // cancelled by Close: aborts upstream dials
	cancel  context.CancelFunc
	wg      sync.WaitGroup // handlers of accepted connections and their relays

	mu           sync.Mutex
	closed       bool
	offset       time.Duration
	closeConnect bool
	attempts     []Attempt
	conns        map[*relayConn]struct{}
}

// NewIoT starts a fake AWS IoT endpoint on 127.0.0.1 with TLS from a CA
// generated for this test. It is closed when the test ends.
func NewIoT(t testing.TB, opts IoTOptions) *IoT {
	t.Helper()
	if opts.Region == "" {
		opts.Region = DefaultIoTRegion
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	if opts.Creds == nil {
		opts.Creds = NewCredStore()
	}
	ca, err := NewCA("fakeaws IoT test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1", "::1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "fakeaws-iot-ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		t.Fatalf("fakeaws: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &IoT{
		t: t, ca: ca, caFile: caFile, region: opts.Region, maxSkew: opts.MaxSkew, creds: opts.Creds,
		up: opts.Upstream, ctx: ctx, cancel: cancel, conns: map[*relayConn]struct{}{},
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serveHTTP))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	f.srv.Config.ErrorLog = log.New(testLogWriter{f}, "fakeaws iot: ", 0)
	f.srv.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// URL is the endpoint to presign: wss://127.0.0.1:P/mqtt.
func (f *IoT) URL() string { return "wss://" + f.Addr() + "/mqtt" }

// Addr is the listener's host:port.
func (f *IoT) Addr() string { return f.srv.Listener.Addr().String() }

// Region is the region the endpoint serves.
func (f *IoT) Region() string { return f.region }

// CAFile is the path of a PEM file holding the fake's root certificate, for
// broker.ca_file.
func (f *IoT) CAFile() string { return f.caFile }

// CAPEM is the fake's root certificate in PEM form.
func (f *IoT) CAPEM() []byte { return f.ca.PEM() }

// ClientTLS returns a client TLS configuration that trusts only the fake's CA.
func (f *IoT) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}
}

// Creds is the registry of credentials the fake accepts.
func (f *IoT) Creds() *CredStore { return f.creds }

// AllowCredentials registers credentials the fake accepts until expires
// (zero: forever) on its own clock. A non-empty token must then be presented
// as X-Amz-Security-Token. Its signature fits Cognito.OnIssue.
func (f *IoT) AllowCredentials(akid, secret, token string, expires time.Time) {
	f.creds.Allow(Cred{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token, Expires: expires})
}

// SetClockOffset sets the fake's clock to real time plus d: it is what
// X-Amz-Date and credential expiry are checked against and what the Date
// header of every answer says.
func (f *IoT) SetClockOffset(d time.Duration) {
	f.mu.Lock()
	f.offset = d
	f.mu.Unlock()
}

// Now is the fake's clock.
func (f *IoT) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Add(f.offset)
}

// CloseAfterConnect switches the "no IoT policy attached" mode: while on,
// connections accepted from now on read the MQTT CONNECT packet and are then
// closed without a CONNACK, as AWS IoT does when the identity is not
// authorized to connect.
func (f *IoT) CloseAfterConnect(on bool) {
	f.mu.Lock()
	f.closeConnect = on
	f.mu.Unlock()
}

// CloseAll drops every open connection at the TCP level, as AWS does when a
// connection reaches its 24-hour limit, and returns how many it dropped. New
// connections are still accepted.
func (f *IoT) CloseAll() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for c := range f.conns {
		if c.close() {
			n++
		}
	}
	return n
}

// Conns is the number of open (accepted, not yet ended) connections.
func (f *IoT) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Attempts returns every upgrade request answered so far, oldest first.
func (f *IoT) Attempts() []Attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Attempt(nil), f.attempts...)
}

// Close stops the listener, drops every connection and waits for all of the
// fake's goroutines. It is called by t.Cleanup and safe to call again.
func (f *IoT) Close() {
	f.mu.Lock()
	already := f.closed
	f.closed = true
	for c := range f.conns {
		c.close()
	}
	f.mu.Unlock()
	if already {
		return
	}
	f.cancel()
	f.srv.Close()
	f.wg.Wait()
}

func (f *IoT) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	now := time.Now().Add(f.offset)
	closeConnect := f.closeConnect
	f.mu.Unlock()

	a := Attempt{Time: now, RemoteAddr: r.RemoteAddr}
	var info sigInfo
	var ref *refusal
	switch {
	case r.URL.Path != "/mqtt":
		ref = &refusal{ReasonWrongPath, "Not found: AWS IoT serves MQTT over WebSocket at /mqtt, not " + r.URL.Path}
	case !websocket.IsWebSocketUpgrade(r):
		ref = &refusal{ReasonNotWebSocket, "Forbidden: expected a WebSocket upgrade request"}
	case !hasMQTTSubprotocol(r):
		ref = &refusal{ReasonNoSubprotocol, "Forbidden: the WebSocket subprotocol must be 'mqtt'"}
	default:
		ref = verifyPresigned(r, now, f.region, f.maxSkew, f.creds, &info)
	}
	a.AccessKeyID, a.Region, a.Service, a.SignedAt, a.Token = info.accessKeyID, info.region, info.service, info.signedAt, info.token
	if ref != nil {
		a.Reason, a.Message = ref.reason, ref.message
		f.record(a)
		f.t.Logf("fakeaws iot: refused %s (access key %q, region %q): %s", r.RemoteAddr, a.AccessKeyID, a.Region, ref.reason)
		forbidden(w, now, ref.message)
		return
	}

	a.Accepted = true
	idx := f.record(a)
	up := websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			f.update(idx, func(a *Attempt) { a.Accepted, a.Reason, a.Message = false, ReasonUpgradeFailed, reason.Error() })
			forbidden(w, now, "Forbidden: "+reason.Error())
		},
	}
	ws, err := up.Upgrade(w, r, http.Header{"Date": {now.UTC().Format(http.TimeFormat)}})
	if err != nil {
		f.t.Logf("fakeaws iot: upgrade from %s failed: %v", r.RemoteAddr, err)
		return
	}
	c := &relayConn{ws: ws}
	if !f.track(c) {
		_ = ws.Close()
		return
	}
	defer f.untrack(c)
	f.relay(c, idx, closeConnect)
}

// track registers an accepted connection; false when the fake is closing.
func (f *IoT) track(c *relayConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *IoT) untrack(c *relayConn) {
	c.close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	f.wg.Done()
}

func (f *IoT) record(a Attempt) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, a)
	return len(f.attempts) - 1
}

func (f *IoT) update(idx int, fn func(*Attempt)) {
	f.mu.Lock()
	fn(&f.attempts[idx])
	f.mu.Unlock()
}

func hasMQTTSubprotocol(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		if p == "mqtt" {
			return true
		}
	}
	return false
}

// forbidden answers 403 the way AWS IoT's gateway does: a Date header from
// the fake's clock (clients learn their skew from it) and a JSON body.
func forbidden(w http.ResponseWriter, now time.Time, message string) {
	h := w.Header()
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", "ForbiddenException")
	h.Set("X-Amzn-Requestid", requestID())
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message, "traceId": requestID()})
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// testLogWriter sends the HTTP server's own error log (TLS handshake
// failures and the like) to the test log while the fake is open.
type testLogWriter struct{ f *IoT }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	closed := w.f.closed
	w.f.mu.Unlock()
	if !closed {
		w.f.t.Logf("%s", p)
	}
	return len(p), nil
}
