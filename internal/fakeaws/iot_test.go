package fakeaws

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/sigv4"
)

const (
	testAKID   = "ASIAFAKEAWSTEST00001"
	testSecret = "fakeSecret/Key+With=Odd/Chars0123456789ab"
	// A token with the characters that need escaping in a URL.
	testToken = "IQoJb3JpZ2luX2Vj+/Token==With/Plus+And=Eq"
)

// connectV5 is an MQTT 5 CONNECT: clean start, keepalive 60, no properties,
// client id "dev-1".
var connectV5 = []byte{0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 5, 'd', 'e', 'v', '-', '1'}

// echoServer is a TCP upstream that echoes every byte back.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func dialIoT(t *testing.T, f *IoT, rawURL string, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if subprotocols == nil {
		subprotocols = []string{"mqtt"}
	}
	d := websocket.Dialer{TLSClientConfig: f.ClientTLS(), Subprotocols: subprotocols, HandshakeTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, rawURL, nil)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func presign(t *testing.T, rawURL, region string, creds sigv4.Credentials, at time.Time) string {
	t.Helper()
	u, err := sigv4.PresignIoT(rawURL, region, creds, at)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// sdkPresign presigns with the SDK directly (service and token handling
// chosen by the caller), for the mistakes PresignIoT must not make.
func sdkPresign(t *testing.T, rawURL, service, region string, creds aws.Credentials, at time.Time) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, strings.Replace(rawURL, "wss://", "https://", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", service, region, at)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(signed, "https://", "wss://", 1)
}

func lastAttempt(t *testing.T, f *IoT) Attempt {
	t.Helper()
	as := f.Attempts()
	if len(as) == 0 {
		t.Fatal("no attempt recorded")
	}
	return as[len(as)-1]
}

func TestIoTAcceptsPresignedURLAndRelays(t *testing.T) {
	echo := newEchoServer(t)
	f := NewIoT(t, IoTOptions{Upstream: echo.ln.Addr().String()})
	f.AllowCredentials(testAKID, testSecret, testToken, f.Now().Add(time.Hour))

	u := presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}, time.Now())
	ws, resp, err := dialIoT(t, f, u)
	if err != nil {
		t.Fatalf("dial: %v (status %v)", err, resp)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || ws.Subprotocol() != "mqtt" {
		t.Fatalf("status %d subprotocol %q", resp.StatusCode, ws.Subprotocol())
	}
	if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
		t.Errorf("101 without a usable Date header: %q", resp.Header.Get("Date"))
	}

	// CONNECT split over two frames, then more bytes: all echoed back.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, part := range [][]byte{connectV5[:7], connectV5[7:], {0xc0, 0x00}} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	want := append(append([]byte{}, connectV5...), 0xc0, 0x00)
	var got []byte
	for len(got) < len(want) {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		if mt != websocket.BinaryMessage {
			t.Fatalf("frame type %d, want binary", mt)
		}
		got = append(got, data...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("relayed % x, want % x", got, want)
	}

	a := lastAttempt(t, f)
	if !a.Accepted || a.Reason != "" || a.AccessKeyID != testAKID || a.Region != f.Region() ||
		a.Service != "iotdevicegateway" || !a.Token || a.ClientID != "dev-1" || a.ClosedAfterConnect {
		t.Fatalf("attempt %+v", a)
	}
	if f.Conns() != 1 || echo.accepted.Load() != 1 {
		t.Fatalf("conns %d, upstream accepted %d", f.Conns(), echo.accepted.Load())
	}

	// The 24-hour limit: every connection is dropped, the client sees it.
	if n := f.CloseAll(); n != 1 {
		t.Fatalf("CloseAll closed %d, want 1", n)
	}
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("read after CloseAll succeeded")
	}
	testutil.WaitFor(t, 10*time.Second, "the connection to be forgotten", func() bool { return f.Conns() == 0 })

	// The fake keeps serving: a fresh signature connects again.
	u = presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}, time.Now())
	if _, _, err := dialIoT(t, f, u); err != nil {
		t.Fatalf("reconnect after CloseAll: %v", err)
	}
	if got := len(f.Attempts()); got != 2 {
		t.Fatalf("%d attempts, want 2", got)
	}
}

func TestIoTRefuses(t *testing.T) {
	f := NewIoT(t, IoTOptions{})
	now := time.Now()
	f.AllowCredentials(testAKID, testSecret, testToken, now.Add(time.Hour))
	f.AllowCredentials("AKIDEXPIRED000000001", testSecret, testToken, now.Add(-time.Minute))
	f.AllowCredentials("AKIDLONGTERM00000001", testSecret, "", time.Time{})
	good := sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}
	noToken := good
	noToken.SessionToken = ""
	badSecret := good
	badSecret.SecretAccessKey = "wrong" + testSecret
	expired := good
	expired.AccessKeyID = "AKIDEXPIRED000000001"
	unknown := good
	unknown.AccessKeyID = "AKIDUNKNOWN000000001"
	_, port, _ := net.SplitHostPort(f.Addr())
	goodURL := presign(t, f.URL(), f.Region(), good, now)

	tests := []struct {
		name         string
		url          string
		subprotocols []string
		reason       string
		akid         string
	}{
		{"wrong region", presign(t, f.URL(), "us-east-1", good, now), nil, ReasonWrongRegion, testAKID},
		{"wrong service", sdkPresign(t, f.URL(), "iot", f.Region(), aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}, now) +
			"&X-Amz-Security-Token=" + url.QueryEscape(testToken), nil, ReasonWrongService, testAKID},
		{"bad signature (wrong secret)", presign(t, f.URL(), f.Region(), badSecret, now), nil, ReasonBadSignature, testAKID},
		{"bad signature (other host signed)", strings.Replace(presign(t, "wss://localhost:"+port+"/mqtt", f.Region(), good, now), "localhost", "127.0.0.1", 1),
			nil, ReasonBadSignature, testAKID},
		{"token inside the signed query (SDK default)", sdkPresign(t, f.URL(), "iotdevicegateway", f.Region(),
			aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}, now), nil, ReasonTokenSigned, testAKID},
		{"expired credentials", presign(t, f.URL(), f.Region(), expired, now), nil, ReasonExpiredCredentials, expired.AccessKeyID},
		{"unknown credentials", presign(t, f.URL(), f.Region(), unknown, now), nil, ReasonUnknownCredentials, unknown.AccessKeyID},
		{"missing token", presign(t, f.URL(), f.Region(), noToken, now), nil, ReasonMissingToken, testAKID},
		{"token on long-term keys", presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: "AKIDLONGTERM00000001", SecretAccessKey: testSecret, SessionToken: "x"}, now),
			nil, ReasonBadToken, "AKIDLONGTERM00000001"},
		{"token not escaped", presign(t, f.URL(), f.Region(), noToken, now) + "&X-Amz-Security-Token=" + testToken, nil, ReasonBadToken, testAKID},
		{"signed 10 minutes ago", presign(t, f.URL(), f.Region(), good, now.Add(-10*time.Minute)), nil, ReasonClockSkew, testAKID},
		{"signed 10 minutes ahead", presign(t, f.URL(), f.Region(), good, now.Add(10*time.Minute)), nil, ReasonClockSkew, testAKID},
		{"tampered date", strings.Replace(goodURL, "X-Amz-Date="+now.UTC().Format(amzDateForm), "X-Amz-Date="+now.Add(time.Second).UTC().Format(amzDateForm), 1),
			nil, "", testAKID}, // bad-scope or bad-signature, see below
		{"repeated parameter", goodURL + "&X-Amz-Algorithm=AWS4-HMAC-SHA256", nil, ReasonMalformed, ""},
		{"signature missing", strings.Split(goodURL, "&X-Amz-Signature=")[0], nil, ReasonMalformed, ""},
		{"not presigned", f.URL(), nil, ReasonMissingAuth, ""},
		{"no mqtt subprotocol", goodURL, []string{"wamp"}, ReasonNoSubprotocol, ""},
		{"wrong path", strings.Replace(goodURL, "/mqtt?", "/mqtt2?", 1), nil, ReasonWrongPath, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.Attempts())
			ws, resp, err := dialIoT(t, f, tc.url, tc.subprotocols...)
			if err == nil {
				_ = ws.Close()
				t.Fatalf("connected, want 403 %s", tc.reason)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("err %v, response %v; want 403", err, resp)
			}
			if d, err := http.ParseTime(resp.Header.Get("Date")); err != nil || time.Until(d).Abs() > time.Minute {
				t.Errorf("Date header %q: %v", resp.Header.Get("Date"), err)
			}
			var body struct{ Message, TraceID string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Message == "" {
				t.Errorf("body: %v %+v", err, body)
			}
			as := f.Attempts()
			if len(as) != before+1 {
				t.Fatalf("%d attempts recorded, want 1", len(as)-before)
			}
			a := as[before]
			want := tc.reason
			if want == "" { // a date one second off keeps the scope day except right at midnight
				want = ReasonBadSignature
				if a.Reason == ReasonBadScope {
					want = ReasonBadScope
				}
			}
			if a.Accepted || a.Reason != want || a.Message != body.Message {
				t.Fatalf("attempt %+v; want reason %s and the body's message %q", a, want, body.Message)
			}
			if tc.akid != "" && a.AccessKeyID != tc.akid {
				t.Errorf("attempt access key %q, want %q", a.AccessKeyID, tc.akid)
			}
			if strings.Contains(body.Message, testSecret) || strings.Contains(body.Message, testToken) {
				t.Errorf("403 body leaks a secret: %s", body.Message)
			}
		})
	}
	if f.Conns() != 0 {
		t.Fatalf("%d connections open after refusals", f.Conns())
	}
}

// TestIoTClockOffset: the fake's clock runs an hour ahead; a URL signed with
// the device clock is refused, the 403's Date header tells the real time, and
// a URL signed with that time is accepted.
func TestIoTClockOffset(t *testing.T) {
	f := NewIoT(t, IoTOptions{})
	f.SetClockOffset(time.Hour)
	f.AllowCredentials(testAKID, testSecret, testToken, time.Now().Add(2*time.Hour))
	creds := sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}

	_, resp, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), creds, time.Now()))
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("err %v resp %v, want 403", err, resp)
	}
	if a := lastAttempt(t, f); a.Reason != ReasonClockSkew || !strings.Contains(a.Message, "Signature expired") {
		t.Fatalf("attempt %+v, want %s", a, ReasonClockSkew)
	}
	serverTime, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		t.Fatalf("Date header: %v", err)
	}
	if skew := time.Until(serverTime); skew < 59*time.Minute || skew > 61*time.Minute {
		t.Fatalf("Date header says skew %v, want ~1h", skew)
	}
	if _, _, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), creds, serverTime)); err != nil {
		t.Fatalf("URL signed with the server's time refused: %v (%+v)", err, lastAttempt(t, f))
	}
	if a := lastAttempt(t, f); !a.Accepted {
		t.Fatalf("attempt %+v", a)
	}

	// Credentials expire on the fake's clock, too.
	f.AllowCredentials(testAKID, testSecret, testToken, time.Now().Add(30*time.Minute))
	if _, resp, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), creds, f.Now())); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("err %v, want 403", err)
	}
	if a := lastAttempt(t, f); a.Reason != ReasonExpiredCredentials {
		t.Fatalf("attempt %+v, want %s", a, ReasonExpiredCredentials)
	}
}

func TestIoTCloseAfterConnect(t *testing.T) {
	echo := newEchoServer(t)
	f := NewIoT(t, IoTOptions{Upstream: echo.ln.Addr().String()})
	f.AllowCredentials(testAKID, testSecret, "", time.Time{})
	f.CloseAfterConnect(true)

	ws, _, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, connectV5); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err == nil {
		t.Fatalf("got % x after CONNECT, want the connection closed", data)
	}
	var ne net.Error
	if errorsAs(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed after CONNECT: %v", err)
	}
	a := lastAttempt(t, f)
	if !a.Accepted || !a.ClosedAfterConnect || a.ClientID != "dev-1" {
		t.Fatalf("attempt %+v", a)
	}
	if n := echo.accepted.Load(); n != 0 {
		t.Fatalf("upstream dialled %d times in CloseAfterConnect mode", n)
	}
	testutil.WaitFor(t, 10*time.Second, "the connection to be forgotten", func() bool { return f.Conns() == 0 })

	// Switched off, the next connection relays.
	f.CloseAfterConnect(false)
	ws, _, err = dialIoT(t, f, presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, connectV5); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, data, err := ws.ReadMessage(); err != nil || !bytes.Equal(data, connectV5) {
		t.Fatalf("echo: % x, %v", data, err)
	}
}

// TestIoTCloseWithOpenConnections: Close ends live relays and returns only
// when their goroutines are gone (goleak checks the rest).
func TestIoTCloseWithOpenConnections(t *testing.T) {
	echo := newEchoServer(t)
	f := NewIoT(t, IoTOptions{Upstream: echo.ln.Addr().String()})
	f.AllowCredentials(testAKID, testSecret, "", time.Time{})
	var conns []*websocket.Conn
	for i := 0; i < 3; i++ {
		ws, _, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws)
	}
	testutil.WaitFor(t, 10*time.Second, "3 upstream connections", func() bool { return echo.accepted.Load() == 3 })
	f.Close()
	if f.Conns() != 0 {
		t.Fatalf("%d connections after Close", f.Conns())
	}
	for _, ws := range conns {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Fatal("connection alive after Close")
		}
	}
	f.Close() // idempotent
}

func TestIoTNoUpstreamClosesWithReason(t *testing.T) {
	f := NewIoT(t, IoTOptions{})
	f.AllowCredentials(testAKID, testSecret, "", time.Time{})
	ws, _, err := dialIoT(t, f, presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseInternalServerErr) {
		t.Fatalf("read: %v, want close 1011", err)
	}
}
