package awsiot

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/redact"
)

// The provider registers each secret it reads with Options.Secrets, so an error that echoes one is
// scrubbed in Status and, through a redact.Handler, in the log.
func TestSecretsLearntAndScrubbed(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.RequireLogin(testLoginProvider, tokenOne)
	tokFile := filepath.Join(t.TempDir(), "id-token")
	writeToken(t, tokFile, tokenOne+"\n")
	secrets := redact.NewSet()
	clock := &testClock{}
	var logs bytes.Buffer
	p, _ := newCognitoProvider(t, cog, t.TempDir(), withLogin(tokFile), func(o *Options) {
		o.Secrets = secrets
		o.Now = clock.Now
		o.Logger = slog.New(redact.NewHandler(slog.NewTextHandler(&logs, nil), secrets))
	})
	ctx := context.Background()
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatal(err)
	}
	issued := cog.Issued()[0]
	for _, s := range []string{issued.SecretKey, issued.SessionToken, tokenOne} {
		if got := secrets.String(s); got != redact.Placeholder {
			t.Errorf("%.12q… not registered: %q", s, got)
		}
	}
	if secrets.Len() != 3 {
		t.Errorf("Secrets holds %d values, want 3 (secret key, session token, login token)", secrets.Len())
	}

	cog.SetEchoingErrors(true)
	clock.Advance(2 * time.Hour) // the credentials are due: refresh asks Cognito again
	err := p.refresh(ctx)
	if err == nil || !strings.Contains(err.Error(), "TOKEN-ONE-SECRET") {
		t.Fatalf("the fake did not echo the token: %v\n%s", err, logs.String())
	}
	p.log.Error("endpoint failed", "err", err)
	st := p.Status()
	if !strings.Contains(st.LastError, redact.Placeholder) {
		t.Errorf("LastError not scrubbed: %s", st.LastError)
	}
	assertNoSecret(t, "Status.LastError", st.LastError)
	assertNoSecret(t, "the log", logs.String())
	if !strings.Contains(logs.String(), redact.Placeholder) {
		t.Errorf("log has no placeholder:\n%s", logs.String())
	}
}

// Credentials from the environment are registered too.
func TestStaticSecretsLearnt(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLE-session-token")
	secrets := redact.NewSet()
	p, err := New(Options{URL: testIoTURL, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Endpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := secrets.String("k=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY t=FwoGZXIvYXdzEXAMPLE-session-token"); got != "k=[redacted] t=[redacted]" {
		t.Errorf("got %q", got)
	}
}
