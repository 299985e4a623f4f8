package awsiot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/edge-agent/edge-agent/awsregion"
)

// ErrIdentityNotFound means Cognito no longer knows the stored identity id
// (deleted, or the identity pool was replaced). The provider does not create a
// new identity by itself; see the package documentation.
var ErrIdentityNotFound = errors.New("cognito identity not found")

// defaultHTTPClient has timeouts on every phase: a device on a bad link must
// not hang forever in a Cognito call.
func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 20 * time.Second
	tr.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// observingClient wraps an *http.Client so that the Date header of every
// Cognito response (errors included) teaches the provider the clock skew.
type observingClient struct {
	c *http.Client
	p *Provider
}

func (p *Provider) observingClient(c *http.Client) httpDoer {
	if c == nil {
		c = defaultHTTPClient()
	}
	return &observingClient{c: c, p: p}
}

func (o *observingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := o.c.Do(req)
	if resp != nil {
		o.p.ObserveResponse(resp)
	}
	return resp, err
}

// maxLoginToken bounds what is read from the login token file (Cognito
// accepts tokens of up to 50000 characters).
const maxLoginToken = 64 << 10

// login is the authentication provider of an authenticated identity.
type login struct {
	provider string // Logins key
	file     string // holds the current token (a secret)
}

// logins returns the Logins map for a Cognito call: nil for a guest
// identity, else {provider: token} with the token read afresh from the file,
// so that a token rotated by another program is used at once. Errors name
// the file, never its content.
func (p *Provider) logins() (map[string]string, error) {
	if p.login.provider == "" {
		return nil, nil
	}
	f, err := os.Open(p.login.file)
	if err != nil {
		return nil, fmt.Errorf("awsiot: reading the login token for %s from cognito.login_token_file: %w "+
			"(the program that signs in to the provider must keep a current ID token there)", p.login.provider, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLoginToken+1))
	if err != nil {
		return nil, fmt.Errorf("awsiot: reading the login token from %s (cognito.login_token_file): %w", p.login.file, err)
	}
	if len(data) > maxLoginToken {
		return nil, fmt.Errorf("awsiot: %s (cognito.login_token_file) is larger than %d bytes: it must hold just the ID token for %s", p.login.file, maxLoginToken, p.login.provider)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return nil, fmt.Errorf("awsiot: %s (cognito.login_token_file) is empty: it must hold the current ID token for %s "+
			"(is the program that signs in and renews the token running?)", p.login.file, p.login.provider)
	case strings.ContainsFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return nil, fmt.Errorf("awsiot: %s (cognito.login_token_file) does not hold a single token: it contains white space or control characters; "+
			"write only the ID token for %s", p.login.file, p.login.provider)
	}
	p.opts.Secrets.Add(secretLogin, token)
	return map[string]string{p.login.provider: token}, nil
}

// getID calls GetId and explains the errors an operator can fix.
func (p *Provider) getID(ctx context.Context) (string, error) {
	logins, err := p.logins()
	if err != nil {
		return "", err
	}
	id, err := p.cognito.GetId(ctx, p.poolID, logins)
	if err != nil {
		return "", p.explainCognito("GetId", "", err)
	}
	if id == "" {
		return "", fmt.Errorf("awsiot: Cognito GetId for pool %s returned no identity id", p.poolID)
	}
	return id, nil
}

// getCredentials calls GetCredentialsForIdentity for id.
func (p *Provider) getCredentials(ctx context.Context, id string) (cognitoCredentials, error) {
	logins, err := p.logins()
	if err != nil {
		return cognitoCredentials{}, err
	}
	c, err := p.cognito.GetCredentialsForIdentity(ctx, id, logins)
	if err != nil {
		return cognitoCredentials{}, p.explainCognito("GetCredentialsForIdentity", id, err)
	}
	if c.AccessKeyID == "" || c.SecretKey == "" {
		return cognitoCredentials{}, fmt.Errorf("awsiot: Cognito GetCredentialsForIdentity for identity %s returned incomplete credentials", id)
	}
	return c, nil
}

// explainCognito wraps a Cognito error with what a person should do about it.
func (p *Provider) explainCognito(op, id string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("awsiot: Cognito %s: %w", op, err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("awsiot: Cognito %s: cannot reach the Cognito Identity service in %s (network, DNS, proxy or cognito.endpoint?): %w", op, regionOf(p.poolID), err)
	}
	switch {
	case apiErr.is("ResourceNotFoundException") && op == "GetId":
		return fmt.Errorf("awsiot: Cognito %s: identity pool %s does not exist in its region (%s): check cognito.identity_pool_id: %w", op, p.poolID, regionOf(p.poolID), err)
	case apiErr.is("ResourceNotFoundException"):
		return fmt.Errorf("awsiot: Cognito %s: %w: identity %s (from %s) is unknown to pool %s. "+
			"edge-agent does not create a new identity by itself because the IoT permissions belong to this one; "+
			"if the identity was deleted or the pool replaced on purpose, delete %s and restart, then grant the new id "+
			"(`edge-agent identity`) its IoT policy again: %v", op, ErrIdentityNotFound, id, p.idPath, p.poolID, p.idPath, err)
	case apiErr.is("NotAuthorizedException") && p.login.provider != "":
		who := "the login"
		if id != "" {
			who = "the login of identity " + id
		}
		return fmt.Errorf("awsiot: Cognito %s refused %s to pool %s with provider %q: the ID token in %s (cognito.login_token_file) "+
			"was not accepted: it may have expired and not been renewed yet, or come from another provider or app client; "+
			"check that the identity pool lists %q as an authentication provider: %w", op, who, p.poolID, p.login.provider, p.login.file, p.login.provider, err)
	case apiErr.is("NotAuthorizedException"):
		return fmt.Errorf("awsiot: Cognito %s refused identity %s of pool %s: enable \"guest access\" (unauthenticated identities) in the identity pool, "+
			"or check that the identity belongs to this pool: %w", op, id, p.poolID, err)
	case apiErr.is("InvalidIdentityPoolConfigurationException"):
		return fmt.Errorf("awsiot: Cognito %s: identity pool %s is misconfigured: give it an unauthenticated (guest) IAM role whose trust policy allows cognito-identity.amazonaws.com for this pool: %w", op, p.poolID, err)
	case apiErr.is("TooManyRequestsException"):
		return fmt.Errorf("awsiot: Cognito %s throttled (TooManyRequests); will retry with backoff: %w", op, err)
	case apiErr.is("InvalidParameterException"):
		return fmt.Errorf("awsiot: Cognito %s rejected its input (pool %s, identity %q): %w", op, p.poolID, id, err)
	default:
		return fmt.Errorf("awsiot: Cognito %s failed (%s); will retry: %w", op, apiErr.Code, err)
	}
}

func regionOf(poolOrIdentity string) string {
	r, _ := awsregion.FromID(poolOrIdentity)
	return r
}
