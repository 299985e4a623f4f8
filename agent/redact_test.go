package agent

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/testca"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/redact"
)

// Text a server sends back may echo the request and with it a secret: here an AWS IoT endpoint whose
// 403 body quotes the presigned URL with its session token (URL-encoded, and cut inside the token at
// the 512 bytes the transport keeps), and a Cognito whose error message quotes the request body with the login
// token. Neither secret may reach the log or /v1/status (issue 7, item 12).
func TestServerEchoedSecretsAreScrubbed(t *testing.T) {
	const loginProvider = "accounts.example.com"
	loginToken := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJndy0wMDAxIn0.LOGIN-TOKEN-" + strings.Repeat("Zq9", 20)

	// Cognito, which echoes the request body in its errors once told to.
	cog := fakeaws.NewCognito(t)
	cog.RequireLogin(loginProvider, loginToken)
	cog.SetCredentialLifetime(4 * time.Second) // refreshed about every 2 s

	// AWS IoT that refuses every upgrade with a body echoing the token.
	ca, err := testca.New("redact test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var refusals atomic.Int32
	iot := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refusals.Add(1)
		tok := r.URL.Query().Get("X-Amz-Security-Token")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "Forbidden: signature mismatch for request %s (token %s)", r.URL.RawQuery, tok)
	}))
	iot.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	iot.StartTLS()
	t.Cleanup(iot.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	tokFile := filepath.Join(t.TempDir(), "login-token")
	for f, b := range map[string][]byte{caFile: ca.PEM(), tokFile: []byte(loginToken + "\n")} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ta := startAgentWith(t, fmt.Sprintf(`
[broker]
provider = "aws-iot"
url      = "wss://%s/mqtt"
region   = "eu-west-1"
ca_file  = %q
reconnect_min = "50ms"
reconnect_max = "300ms"

[cognito]
identity_pool_id = %q
endpoint = %q
login_provider = %q
login_token_file = %q
`, iot.Listener.Addr(), caFile, cog.PoolID(), cog.URL(), loginProvider, tokFile), t.TempDir(), testutil.SocketPath(t, "agent.sock"))
	if redact.SetOf(ta.a.log.Handler()) == nil {
		t.Fatal("the agent's logger does not scrub")
	}

	testutil.WaitFor(t, 15*time.Second, "a 403 echoing the session token", func() bool {
		return refusals.Load() > 0 && strings.Contains(ta.status().LastError, "403")
	})
	cog.SetEchoingErrors(true)
	testutil.WaitFor(t, 20*time.Second, "a Cognito error echoing the login token", func() bool {
		st := ta.status()
		return st.AWS != nil && strings.Contains(st.AWS.LastError, "NotAuthorizedException")
	})
	raw := ta.do("GET", "/v1/status", "", nil).raw
	logs := ta.logs.String()

	// What must not appear: the login token, and each issued secret key and session token, raw or
	// URL-encoded, whole or any 24-byte piece of it.
	secrets := []string{loginToken}
	for _, c := range cog.Issued() {
		secrets = append(secrets, c.SecretKey, c.SessionToken, url.QueryEscape(c.SessionToken))
	}
	for _, where := range []struct{ name, text string }{{"/v1/status", raw}, {"the log", logs}} {
		for _, s := range secrets {
			for i := 0; i+24 <= len(s); i += 12 {
				if piece := s[i : i+24]; strings.Contains(where.text, piece) {
					t.Fatalf("%s holds %q, a piece of a secret:\n%s", where.name, piece, where.text)
				}
			}
		}
		if !strings.Contains(where.text, redact.Placeholder) {
			t.Errorf("%s has no %s: did the servers echo anything?\n%s", where.name, redact.Placeholder, where.text)
		}
	}
	st := ta.status()
	t.Logf("%d IoT refusals, %d credentials issued\nlast_error ends: …%s\naws.last_error ends: …%s", refusals.Load(), len(cog.Issued()),
		st.LastError[max(0, len(st.LastError)-120):], st.AWS.LastError[max(0, len(st.AWS.LastError)-200):])
}
