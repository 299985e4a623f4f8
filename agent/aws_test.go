package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
)

// fakeAWS is a loopback AWS: a Cognito Identity endpoint spoken to by the real SDK client, and an AWS
// IoT WebSocket endpoint that verifies each presigned URL independently and relays accepted
// connections to a real Mosquitto.
type fakeAWS struct {
	broker *mosquitto.Broker
	iot    *fakeaws.IoT
	cog    *fakeaws.Cognito
	// cognitoExtra is appended to the [cognito] table of config (e.g. login_provider).
	cognitoExtra string
}

func newFakeAWS(t *testing.T) *fakeAWS {
	t.Helper()
	b := mosquitto.Start(t)
	iot := fakeaws.NewIoT(t, fakeaws.IoTOptions{Upstream: b.TCPAddr()})
	cog := fakeaws.NewCognito(t)
	cog.OnIssue(iot.AllowCredentials)
	return &fakeAWS{broker: b, iot: iot, cog: cog}
}

func (f *fakeAWS) config() string {
	return fmt.Sprintf(`
[broker]
provider = "aws-iot"
url      = %q
region   = %q
ca_file  = %q
keepalive = "30s"
reconnect_min = "50ms"
reconnect_max = "500ms"

[cognito]
identity_pool_id = %q
endpoint = %q
%s`, f.iot.URL(), f.iot.Region(), f.iot.CAFile(), f.cog.PoolID(), f.cog.URL(), f.cognitoExtra)
}

// startAWSAgent is startAgent for provider aws-iot (the [broker] table comes from the fake).
func startAWSAgent(t *testing.T, f *fakeAWS, state, sock string) *testAgent {
	t.Helper()
	if state == "" {
		state = t.TempDir()
	}
	if sock == "" {
		sock = testutil.SocketPath(t, "agent.sock")
	}
	return startAgentWith(t, f.config(), state, sock)
}

func (f *fakeAWS) acceptedKeys() []string {
	var keys []string
	for _, a := range f.iot.Attempts() {
		if a.Accepted {
			keys = append(keys, a.AccessKeyID)
		}
	}
	return keys
}

func TestAWSHappyPath(t *testing.T) {
	f := newFakeAWS(t)
	sub := mosquitto.Subscribe(t, f.broker.TCPAddr(), "dt/#")
	ta := startAWSAgent(t, f, "", "")
	testutil.WaitFor(t, 15*time.Second, "connected through the fake AWS IoT", func() bool { return ta.status().State == "connected" })

	if r := ta.publish("dt/gw/temp", "21.5"); r.status != http.StatusAccepted {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	msgs, err := sub.WaitCount(1, 10*time.Second)
	if err != nil || string(msgs[0].Payload) != "21.5" {
		t.Fatalf("subscriber: %v %v", msgs, err)
	}
	st := ta.status()
	if st.AWS == nil || !awsiot.ValidIdentityID(st.AWS.IdentityID) || st.AWS.CredentialsExpire == nil || st.AWS.Region != "eu-west-1" || st.AWS.CredentialSource != "cognito" {
		t.Fatalf("status.aws = %+v", st.AWS)
	}
	if st.Endpoint != f.iot.URL() || strings.Contains(ta.logs.String(), "X-Amz-Signature") {
		t.Fatalf("endpoint %q; a signature must never reach status or logs", st.Endpoint)
	}
	r := ta.do("GET", "/v1/identity", "", nil)
	if r.status != 200 || r.body["identity_id"] != st.AWS.IdentityID {
		t.Fatalf("/v1/identity: %d %s", r.status, r.raw)
	}
	if n := f.cog.GetIdCalls(); n != 1 {
		t.Fatalf("GetId called %d times, want 1", n)
	}
	// The accepted connection was signed with the credentials Cognito issued, token appended.
	att := f.iot.Attempts()
	last := att[len(att)-1]
	issued := f.cog.Issued()
	if !last.Accepted || !last.Token || last.AccessKeyID != issued[len(issued)-1].AccessKeyID || last.Service != "iotdevicegateway" {
		t.Fatalf("last IoT attempt %+v; issued %+v", last, issued)
	}
	t.Logf("signed with %s for %s/%s at %s; identity %s", last.AccessKeyID, last.Region, last.Service, last.SignedAt.Format(time.RFC3339), st.AWS.IdentityID)
}

func TestAWSLimitsOnTheLocalAPI(t *testing.T) {
	f := newFakeAWS(t)
	ta := startAWSAgent(t, f, "", "")
	long := strings.Repeat("a", 257)
	deep := "a/b/c/d/e/f/g/h/i" // 8 slashes
	for _, c := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/v1/publish?topic=" + long, "x", 400, "over the limit of 256"},
		{"/v1/publish?topic=" + deep, "x", 400, "8 slashes, over the limit of 7"},
		{"/v1/publish?topic=ok", strings.Repeat("x", 128<<10+1), 413, "over the limit of 131072"},
		{"/v1/publish?topic=a/b/c/d/e/f/g/h", strings.Repeat("x", 128<<10), 202, ""},
	} {
		r := ta.do("POST", c.path, "", []byte(c.body))
		if r.status != c.status || !strings.Contains(r.raw, c.want) {
			t.Errorf("POST %.60s: %d %s, want %d %q", c.path, r.status, r.raw, c.status, c.want)
		}
	}
	r := ta.do("GET", "/v1/subscribe?topic="+url.QueryEscape(deep+"/#"), "", nil)
	if r.status != 400 || !strings.Contains(r.raw, "slashes") {
		t.Errorf("deep filter: %d %s", r.status, r.raw)
	}
	// 50 subscriptions per connection: the 51st distinct filter is refused.
	testutil.WaitFor(t, 15*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	var streams []*http.Response
	defer func() {
		for _, s := range streams {
			s.Body.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		var qs []string
		for j := 0; j < 16; j++ {
			qs = append(qs, "topic="+url.QueryEscape(fmt.Sprintf("cmd/%d/%d", i, j)))
		}
		req, _ := http.NewRequest("GET", "http://agent/v1/subscribe?"+strings.Join(qs, "&"), nil)
		resp, err := ta.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if resp.StatusCode != 200 {
				t.Fatalf("subscription batch %d: %d", i, resp.StatusCode)
			}
			streams = append(streams, resp)
			continue
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body[:n]), "limit is 50") {
			t.Fatalf("filters 49..64: %d %s, want 400 naming the limit of 50", resp.StatusCode, body[:n])
		}
	}
	m := ta.do("GET", "/metrics", "", nil)
	if !strings.Contains(m.raw, "edge_agent_aws_clock_skew_seconds") || !strings.Contains(m.raw, "edge_agent_aws_credentials_expiry_timestamp_seconds") {
		t.Errorf("metrics lack the AWS gauges:\n%s", m.raw)
	}
}

// Credentials that expire during the run are refreshed, and the next connection uses the new ones.
func TestAWSCredentialsRefreshed(t *testing.T) {
	f := newFakeAWS(t)
	f.cog.SetCredentialLifetime(4 * time.Second)
	sub := mosquitto.Subscribe(t, f.broker.TCPAddr(), "rf/#")
	ta := startAWSAgent(t, f, "", "")
	testutil.WaitFor(t, 15*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	first := f.acceptedKeys()[0]
	testutil.WaitFor(t, 15*time.Second, "a credentials refresh", func() bool { return len(f.cog.Issued()) >= 2 })
	f.iot.CloseAll() // as AWS does at the 24-hour limit
	testutil.WaitFor(t, 20*time.Second, "a reconnect with new credentials", func() bool {
		keys := f.acceptedKeys()
		return len(keys) >= 2 && keys[len(keys)-1] != first && ta.status().State == "connected"
	})
	if r := ta.publish("rf/x", "after-refresh"); r.status != 202 {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	if _, err := sub.WaitCount(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.iot.Attempts() {
		if !a.Accepted && a.Reason == fakeaws.ReasonExpiredCredentials {
			t.Fatalf("the agent presented expired credentials: %+v", a)
		}
	}
	for _, c := range f.cog.Issued() {
		t.Logf("Cognito issued %s, expires %s", c.AccessKeyID, c.Expires.Format(time.RFC3339))
	}
	for _, a := range f.iot.Attempts() {
		t.Logf("IoT upgrade signed %s with %s: accepted=%v %s", a.SignedAt.Format(time.RFC3339), a.AccessKeyID, a.Accepted, a.Reason)
	}
}

// Cognito unavailable for a while: publishes are queued, status explains, and everything is
// delivered once it is back.
func TestAWSCognitoUnavailableThenRecovers(t *testing.T) {
	f := newFakeAWS(t)
	f.cog.SetUnavailable(true)
	sub := mosquitto.Subscribe(t, f.broker.TCPAddr(), "cu/#")
	ta := startAWSAgent(t, f, "", "")
	for i := 1; i <= 10; i++ {
		if r := ta.publish("cu/n", fmt.Sprint(i)); r.status != 202 {
			t.Fatalf("publish while Cognito is down: %d %s", r.status, r.raw)
		}
	}
	testutil.WaitFor(t, 15*time.Second, "a diagnosis about Cognito", func() bool {
		st := ta.status()
		return st.State != "connected" && strings.Contains(st.Diagnosis, "Cognito")
	})
	if d := ta.status().Queue.Depth; d != 10 {
		t.Fatalf("depth %d, want 10", d)
	}
	f.cog.SetUnavailable(false)
	msgs, err := sub.WaitDistinct(10, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, ta.logs)
	}
	assertInOrder(t, msgs, 10)
	testutil.WaitFor(t, 5*time.Second, "diagnosis cleared", func() bool { return ta.status().Diagnosis == "" })
}

// The identity id is kept in state_dir and reused after a restart: no second GetId.
func TestAWSIdentityReusedAfterRestart(t *testing.T) {
	f := newFakeAWS(t)
	state := t.TempDir()
	ta := startAWSAgent(t, f, state, "")
	testutil.WaitFor(t, 15*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	id := ta.status().AWS.IdentityID
	ta.stop()
	fi, err := os.Stat(filepath.Join(state, awsiot.IdentityFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	ta2 := startAWSAgent(t, f, state, "")
	testutil.WaitFor(t, 15*time.Second, "connected again", func() bool { return ta2.status().State == "connected" })
	if got := ta2.status().AWS.IdentityID; got != id {
		t.Fatalf("identity after restart %q, want %q", got, id)
	}
	if n := f.cog.GetIdCalls(); n != 1 {
		t.Fatalf("GetId called %d times across a restart, want 1", n)
	}
}

// The fake AWS clock is an hour ahead of ours: the agent learns the offset and connects anyway.
func TestAWSClockSkew(t *testing.T) {
	f := newFakeAWS(t)
	f.cog.SetClockOffset(time.Hour)
	f.iot.SetClockOffset(time.Hour)
	ta := startAWSAgent(t, f, "", "")
	testutil.WaitFor(t, 20*time.Second, "connected despite the skew", func() bool { return ta.status().State == "connected" })
	st := ta.status()
	if st.AWS.ClockSkewSeconds < 3590 || st.AWS.ClockSkewSeconds > 3610 {
		t.Fatalf("clock skew %v s, want about 3600", st.AWS.ClockSkewSeconds)
	}
	for _, a := range f.iot.Attempts() {
		if a.Accepted && time.Until(a.SignedAt) < 59*time.Minute {
			t.Fatalf("accepted attempt signed at %v, not at the corrected time", a.SignedAt)
		}
		t.Logf("local clock %s, upgrade signed at %s (X-Amz-Date), accepted=%v %s; learnt skew %.0fs",
			time.Now().UTC().Format(time.RFC3339), a.SignedAt.UTC().Format(time.RFC3339), a.Accepted, a.Reason, st.AWS.ClockSkewSeconds)
	}
}

// A connection closed right after CONNECT (no IoT policy): the log and status say what to do, with
// the identity id.
func TestAWSClosedAfterConnectDiagnosis(t *testing.T) {
	f := newFakeAWS(t)
	f.iot.CloseAfterConnect(true)
	ta := startAWSAgent(t, f, "", "")
	var st localapi.Status
	testutil.WaitFor(t, 20*time.Second, "the policy diagnosis", func() bool {
		st = ta.status()
		return strings.Contains(st.Diagnosis, "attach-policy")
	})
	id := st.AWS.IdentityID
	if id == "" || !strings.Contains(st.Diagnosis, "--target "+id) {
		t.Fatalf("diagnosis lacks the identity id %q:\n%s", id, st.Diagnosis)
	}
	logs := ta.logs.String()
	if !strings.Contains(logs, "attach-policy") || !strings.Contains(logs, id) {
		t.Fatalf("log lacks the diagnosis:\n%s", logs)
	}
	// Logged once per distinct diagnosis, not once per attempt.
	if n := strings.Count(logs, "AWS IoT refused the connection"); n != 1 {
		t.Fatalf("diagnosis logged %d times, want 1", n)
	}
	raw, _ := json.MarshalIndent(st, "", "  ")
	t.Logf("status:\n%s", raw)
	f.iot.CloseAfterConnect(false)
	testutil.WaitFor(t, 30*time.Second, "connected once the policy is attached", func() bool { return ta.status().State == "connected" })
	if d := ta.status().Diagnosis; d != "" {
		t.Fatalf("diagnosis not cleared after connecting: %q", d)
	}
}

// An authenticated identity ([cognito] login_provider + login_token_file): Cognito gets the token from
// the file on every call, the diagnosis for a connection closed after CONNECT puts the attached IoT
// policy first, and once allowed the agent connects, delivers, and status shows it authenticated.
// The token never reaches the log or status.
func TestAWSAuthenticatedIdentity(t *testing.T) {
	const (
		provider = "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
		token    = "eyJraWQiOiJhZ2VudCJ9.AGENT-LOGIN-SECRET.c2ln"
	)
	f := newFakeAWS(t)
	f.cog.RequireLogin(provider, token)
	tokFile := filepath.Join(t.TempDir(), "id-token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cognitoExtra = fmt.Sprintf("login_provider = %q\nlogin_token_file = %q\n", provider, tokFile)
	f.iot.CloseAfterConnect(true) // no IoT policy attached yet
	sub := mosquitto.Subscribe(t, f.broker.TCPAddr(), "au/#")
	ta := startAWSAgent(t, f, "", "")

	var st localapi.Status
	testutil.WaitFor(t, 20*time.Second, "the policy diagnosis", func() bool {
		st = ta.status()
		return strings.Contains(st.Diagnosis, "attach-policy")
	})
	id := st.AWS.IdentityID
	if !st.AWS.Authenticated || !f.cog.Authenticated(id) {
		t.Fatalf("status.aws %+v; fake says authenticated=%v", st.AWS, f.cog.Authenticated(id))
	}
	if !strings.Contains(st.Diagnosis, "1. No AWS IoT policy is attached to the Cognito identity "+id) ||
		!strings.Contains(st.Diagnosis, "--target "+id) || !strings.Contains(st.Diagnosis, "authenticated IAM role") {
		t.Fatalf("diagnosis for an authenticated identity should put attach-policy first:\n%s", st.Diagnosis)
	}

	f.iot.CloseAfterConnect(false) // the operator attached the policy
	testutil.WaitFor(t, 30*time.Second, "connected", func() bool { return ta.status().State == "connected" })
	if r := ta.publish("au/x", "signed-in"); r.status != http.StatusAccepted {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	if msgs, err := sub.WaitCount(1, 10*time.Second); err != nil || string(msgs[0].Payload) != "signed-in" {
		t.Fatalf("subscriber: %v %v", msgs, err)
	}
	st = ta.status()
	if st.AWS == nil || !st.AWS.Authenticated || st.AWS.IdentityID != id || st.Diagnosis != "" {
		t.Fatalf("status.aws %+v, diagnosis %q", st.AWS, st.Diagnosis)
	}
	r := ta.do("GET", "/v1/status", "", nil)
	if aws, _ := r.body["aws"].(map[string]any); aws["authenticated"] != true {
		t.Fatalf("/v1/status aws = %v, want authenticated true", r.body["aws"])
	}
	calls := f.cog.Logins()
	if len(calls) < 2 || f.cog.GetIdCalls() != 1 {
		t.Fatalf("Cognito calls %d, GetId %d", len(calls), f.cog.GetIdCalls())
	}
	for _, c := range calls {
		if len(c.Logins) != 1 || c.Logins[provider] != token {
			t.Fatalf("%s carried Logins %v, want the token from %s", c.Op, c.Logins, tokFile)
		}
	}
	if logs := ta.logs.String(); strings.Contains(logs, "AGENT-LOGIN-SECRET") || strings.Contains(r.raw, "AGENT-LOGIN-SECRET") {
		t.Fatalf("the login token reached the log or status:\n%s\n%s", logs, r.raw)
	}
}
