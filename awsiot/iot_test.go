package awsiot

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// dialIoT opens the WebSocket upgrade to the fake IoT endpoint with the URL
// the provider presigned, as the transport would, and reports the HTTP answer.
func dialIoT(t *testing.T, iot *fakeaws.IoT, p *Provider) (status int, resp *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u, hdr, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint: %v", err)
	}
	d := websocket.Dialer{TLSClientConfig: iot.ClientTLS(), Subprotocols: []string{"mqtt"}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, u, hdr)
	if ws != nil {
		_ = ws.Close()
	}
	if resp == nil {
		t.Fatalf("dial %s: no HTTP answer: %v", iot.URL(), err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp
}

func lastAttempt(t *testing.T, iot *fakeaws.IoT) fakeaws.Attempt {
	t.Helper()
	a := iot.Attempts()
	if len(a) == 0 {
		t.Fatal("the IoT fake saw no attempt")
	}
	return a[len(a)-1]
}

// The presigned URLs pass the IoT fake's independent SigV4 check with
// Cognito credentials, also after a refresh and with both AWS clocks an hour
// ahead of the device.
func TestPresignedURLAcceptedByIoTFake(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	iot := fakeaws.NewIoT(t, fakeaws.IoTOptions{})
	cog.OnIssue(iot.AllowCredentials)
	cog.SetCredentialLifetime(3 * time.Second)
	cog.SetClockOffset(time.Hour)
	iot.SetClockOffset(time.Hour)
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) {
		o.URL = iot.URL()
		o.Region = iot.Region()
	})

	if status, _ := dialIoT(t, iot, p); status != http.StatusSwitchingProtocols {
		a := lastAttempt(t, iot)
		t.Fatalf("upgrade answered %d (%s: %s), want 101", status, a.Reason, a.Message)
	}
	first := cog.Issued()[0]
	if a := lastAttempt(t, iot); !a.Accepted || a.AccessKeyID != first.AccessKeyID || !a.Token {
		t.Fatalf("attempt %+v, want accepted with %s and a token", a, first.AccessKeyID)
	}

	// Run refreshes; the next connection uses the new credentials, which the
	// fake accepts, and the old ones have expired by then.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testutil.WaitFor(t, 10*time.Second, "a refresh", func() bool { return len(cog.Issued()) >= 2 })
	testutil.WaitFor(t, 10*time.Second, "the first credentials to expire", func() bool { return iot.Now().After(first.Expires) })
	if status, _ := dialIoT(t, iot, p); status != http.StatusSwitchingProtocols {
		a := lastAttempt(t, iot)
		t.Fatalf("upgrade after refresh answered %d (%s: %s), want 101", status, a.Reason, a.Message)
	}
	if a := lastAttempt(t, iot); a.AccessKeyID == first.AccessKeyID {
		t.Fatalf("connected with the expired first credentials %s", a.AccessKeyID)
	}
}

// Without Cognito, the 403 answer's Date (via ObserveResponse) teaches the
// skew, and the next attempt is accepted.
func TestSkewLearnedFromRefusedUpgrade(t *testing.T) {
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE000002")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	iot := fakeaws.NewIoT(t, fakeaws.IoTOptions{})
	iot.AllowCredentials("AKIAENVEXAMPLE000002", "secret", "", time.Time{})
	iot.SetClockOffset(-2 * time.Hour) // AWS says it is two hours earlier than the device thinks
	p, err := New(Options{URL: iot.URL(), Region: iot.Region()})
	if err != nil {
		t.Fatal(err)
	}

	status, resp := dialIoT(t, iot, p)
	if status != http.StatusForbidden || lastAttempt(t, iot).Reason != fakeaws.ReasonClockSkew {
		t.Fatalf("first attempt: %d %s, want 403 for clock skew", status, lastAttempt(t, iot).Reason)
	}
	p.ObserveResponse(resp)
	if s := p.Status().ClockSkew; (s + 2*time.Hour).Abs() > 2*time.Second {
		t.Fatalf("ClockSkew = %v, want about -2h", s)
	}
	if status, _ := dialIoT(t, iot, p); status != http.StatusSwitchingProtocols {
		a := lastAttempt(t, iot)
		t.Fatalf("second attempt answered %d (%s: %s), want 101", status, a.Reason, a.Message)
	}
}
