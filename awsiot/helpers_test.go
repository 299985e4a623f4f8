package awsiot

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

const testIoTURL = "wss://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com/mqtt"

// testClock is real time plus an adjustable offset.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// testHTTPClient is closed (idle connections) when the test ends, so goleak
// sees no keep-alive goroutines.
func testHTTPClient(t *testing.T) *http.Client {
	hc := defaultHTTPClient()
	hc.Timeout = 10 * time.Second
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

type provOpt func(*Options)

// newCognitoProvider builds a Provider against the fake Cognito.
func newCognitoProvider(t *testing.T, cog *fakeaws.Cognito, stateDir string, fns ...provOpt) (*Provider, *testutil.Buffer) {
	t.Helper()
	logs := &testutil.Buffer{}
	o := Options{
		URL:             testIoTURL,
		IdentityPoolID:  cog.PoolID(),
		CognitoEndpoint: cog.URL(),
		StateDir:        stateDir,
		HTTPClient:      testHTTPClient(t),
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, fn := range fns {
		fn(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, logs
}

// signedParams parses a presigned URL into access key id, X-Amz-Date and token.
type signedParams struct {
	AccessKeyID, Date, Region, Service, Token string
	SignedAt                                  time.Time
}

func parseSigned(t *testing.T, raw string) signedParams {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("presigned URL does not parse: %v", err)
	}
	if u.Scheme != "wss" {
		t.Fatalf("presigned URL scheme %q, want wss", u.Scheme)
	}
	q := u.Query()
	parts := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		t.Fatalf("X-Amz-Credential = %q, want AKID/date/region/service/aws4_request", q.Get("X-Amz-Credential"))
	}
	at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", q.Get("X-Amz-Date"), err)
	}
	if q.Get("X-Amz-Signature") == "" {
		t.Fatalf("no X-Amz-Signature in %s", u.Redacted())
	}
	return signedParams{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3],
		Token: q.Get("X-Amz-Security-Token"), SignedAt: at}
}
