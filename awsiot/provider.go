package awsiot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/awsregion"
	"github.com/edge-agent/edge-agent/redact"
	"github.com/edge-agent/edge-agent/sigv4"
)

// IdentityFileName is the file under Options.StateDir that holds the Cognito
// identity id.
const IdentityFileName = "cognito-identity-id"

// EnvCognitoEndpoint overrides the Cognito Identity endpoint when
// Options.CognitoEndpoint is empty (the AWS SDKs' service-specific variable).
const EnvCognitoEndpoint = "AWS_ENDPOINT_URL_COGNITO_IDENTITY"

// Options configures a Provider. URL is required; with IdentityPoolID set,
// StateDir is required too.
type Options struct {
	URL             string // wss://<endpoint>/mqtt from broker.url
	Region          string // signing region; empty: parsed from an *.iot.<region>.amazonaws.com host
	IdentityPoolID  string // empty → standard AWS env vars / shared config credentials
	CognitoEndpoint string // [cognito] endpoint; AWS_ENDPOINT_URL_COGNITO_IDENTITY honoured too (this wins)
	StateDir        string // identity id persisted as <StateDir>/<IdentityFile> (0600, atomic)
	IdentityFile    string // file name under StateDir; empty = IdentityFileName
	// LoginProvider and LoginTokenFile, both or neither, make the Cognito
	// identity an authenticated one: GetId and GetCredentialsForIdentity send
	// Logins {LoginProvider: token}, the token read afresh from LoginTokenFile
	// (and trimmed) for every call, so an external program can rotate it. The
	// token is a secret: it never appears in logs or errors.
	LoginProvider  string // e.g. "cognito-idp.<region>.amazonaws.com/<user pool id>", "accounts.google.com"
	LoginTokenFile string // file holding the provider's current ID token
	HTTPClient     *http.Client
	Logger         *slog.Logger
	Now            func() time.Time // nil = time.Now (tests)
	// Secrets, if set, learns each secret access key, session token and login token as the
	// provider reads it, so that the agent's logs and status can scrub them from text a server
	// sends back. Status.LastError is scrubbed with it.
	Secrets *redact.Set
}

// Status is a snapshot of the provider's state for `edge-agent status`.
type Status struct {
	IdentityID        string        // Cognito identity id; empty without a pool or before the first GetId
	CredentialSource  string        // "cognito", "environment" or "shared-config:<profile>"
	CredentialsExpire time.Time     // AWS time; zero for long-term keys or before the first fetch
	ClockSkew         time.Duration // AWS time minus local time; 0 when under 2 s
	LastError         string        // last credentials error; empty after a success
	Authenticated     bool          // the identity signs in with Options.LoginProvider (an authenticated identity)
}

// Provider resolves AWS credentials and presigns AWS IoT WebSocket URLs.
// Create it with New; all methods are safe for concurrent use.
type Provider struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	region  string // IoT signing region
	idPath  string
	cognito *cognitoClient // nil without a pool
	poolID  string
	login   login // zero for a guest identity

	idSem   chan struct{} // held while resolving the identity id (one GetId at a time)
	credSem chan struct{} // held while fetching credentials (one refresh at a time)
	wake    chan struct{} // cap 1: Run recomputes its schedule
	running chan struct{} // cap 1: held by Run

	mu         sync.Mutex
	identityID string
	creds      *cachedCreds
	failures   int       // consecutive failed refreshes
	retryAt    time.Time // AWS time before which no lazy refresh is tried while creds are valid
	lastErr    string
	source     string
	skew       skewState
}

// New validates opts and builds a Provider. It does no network I/O.
func New(opts Options) (*Provider, error) {
	p := &Provider{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		poolID:  strings.TrimSpace(opts.IdentityPoolID),
		idSem:   make(chan struct{}, 1),
		credSem: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		running: make(chan struct{}, 1),
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}

	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("awsiot: broker.url %q is not a URL: %w", opts.URL, err)
	}
	if u.Scheme != "wss" || u.Hostname() == "" {
		return nil, fmt.Errorf("awsiot: broker.url %q must be wss://<your-endpoint>-ats.iot.<region>.amazonaws.com/mqtt (see `aws iot describe-endpoint --endpoint-type iot:Data-ATS`)", opts.URL)
	}
	p.region = strings.TrimSpace(opts.Region)
	if p.region == "" {
		r, ok := awsregion.FromHost(u.Hostname())
		if !ok {
			return nil, fmt.Errorf("awsiot: cannot tell the AWS region from host %q: set broker.region (e.g. \"eu-west-1\")", u.Hostname())
		}
		p.region = r
	}

	if p.poolID == "" {
		if opts.LoginProvider != "" || opts.LoginTokenFile != "" {
			return nil, errors.New("awsiot: cognito.login_provider and cognito.login_token_file need cognito.identity_pool_id (the pool whose authenticated identity the login signs in to)")
		}
		p.source = "environment/shared-config"
		return p, nil
	}

	poolRegion, ok := awsregion.FromID(p.poolID)
	if !ok {
		return nil, fmt.Errorf("awsiot: cognito.identity_pool_id %q is not an identity pool id (want <region>:<uuid>, e.g. eu-west-1:0a1b2c3d-…; copy it from the Cognito console)", p.poolID)
	}
	if opts.StateDir == "" {
		return nil, errors.New("awsiot: state_dir is required with cognito.identity_pool_id: the Cognito identity id is kept there for the life of the device")
	}
	p.idPath = filepath.Join(opts.StateDir, IdentityFileName)
	if opts.IdentityFile != "" {
		p.idPath = filepath.Join(opts.StateDir, opts.IdentityFile)
	}
	p.source = "cognito"
	p.login = login{provider: strings.TrimSpace(opts.LoginProvider), file: strings.TrimSpace(opts.LoginTokenFile)}
	switch l := p.login; {
	case l.provider != "" && l.file == "":
		return nil, errors.New("awsiot: cognito.login_provider is set without cognito.login_token_file: an authenticated identity needs both")
	case l.provider == "" && l.file != "":
		return nil, errors.New("awsiot: cognito.login_token_file is set without cognito.login_provider: an authenticated identity needs both")
	}

	endpoint := strings.TrimSpace(opts.CognitoEndpoint)
	if endpoint == "" {
		endpoint = strings.TrimSpace(os.Getenv(EnvCognitoEndpoint))
	}
	if endpoint != "" {
		eu, err := url.Parse(endpoint)
		if err != nil || (eu.Scheme != "https" && eu.Scheme != "http") || eu.Host == "" {
			return nil, fmt.Errorf("awsiot: Cognito endpoint override %q (cognito.endpoint or %s) must be an http(s) URL", endpoint, EnvCognitoEndpoint)
		}
	}
	// The identity pool lives in the region its id names, which may differ
	// from the IoT endpoint's region.
	p.cognito = newCognitoClient(poolRegion, endpoint, p.observingClient(opts.HTTPClient))
	return p, nil
}

// IdentityID returns the device's Cognito identity id: read from
// <StateDir>/cognito-identity-id, or created once with GetId and persisted.
// Concurrent callers share one GetId call. Without an identity pool it fails.
func (p *Provider) IdentityID(ctx context.Context) (string, error) {
	if p.cognito == nil {
		return "", errors.New("awsiot: no Cognito identity: cognito.identity_pool_id is not set (credentials come from the AWS environment variables / shared config)")
	}
	p.mu.Lock()
	id := p.identityID
	p.mu.Unlock()
	if id != "" {
		return id, nil
	}
	select {
	case p.idSem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("awsiot: waiting for the Cognito identity id: %w", ctx.Err())
	}
	defer func() { <-p.idSem }()

	p.mu.Lock()
	id = p.identityID
	p.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := p.loadOrCreateIdentity(ctx)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.identityID = id
	p.mu.Unlock()
	return id, nil
}

// Endpoint resolves credentials (cached or refreshed) and returns the AWS IoT
// URL presigned with the skew-corrected time, and a nil header. It is meant
// for transport.Config.Endpoint and is called on every connection attempt.
func (p *Provider) Endpoint(ctx context.Context) (string, http.Header, error) {
	creds, err := p.credentials(ctx)
	if err != nil {
		return "", nil, err
	}
	signed, err := sigv4.PresignIoT(p.opts.URL, p.region, creds, p.correctedNow())
	if err != nil {
		return "", nil, fmt.Errorf("awsiot: presigning %s for region %s: %w", p.opts.URL, p.region, err)
	}
	return signed, nil, nil
}

// Status returns a snapshot of the provider's state.
func (p *Provider) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		IdentityID:       p.identityID,
		CredentialSource: p.source,
		ClockSkew:        p.skew.offset,
		LastError:        p.opts.Secrets.String(p.lastErr),
		Authenticated:    p.login.provider != "",
	}
	if p.creds != nil {
		st.CredentialsExpire = p.creds.expires
	}
	return st
}

// Region is the region the URL is signed for.
func (p *Provider) Region() string { return p.region }

// correctedNow is the local clock plus the learned skew: our best idea of AWS time.
func (p *Provider) correctedNow() time.Time {
	p.mu.Lock()
	off := p.skew.offset
	p.mu.Unlock()
	return p.now().Add(off)
}

func (p *Provider) signalWake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Kinds of secret registered with Options.Secrets.
const (
	secretAccessKey = "aws secret access key"
	secretSession   = "aws session token"
	secretLogin     = "cognito login token"
)

// learnCredentials registers the secret parts of c with Options.Secrets.
func (p *Provider) learnCredentials(c sigv4.Credentials) {
	p.opts.Secrets.Add(secretAccessKey, c.SecretAccessKey)
	p.opts.Secrets.Add(secretSession, c.SessionToken)
}
