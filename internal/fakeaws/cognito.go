package fakeaws

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cognito is a fake Amazon Cognito Identity endpoint on 127.0.0.1 speaking the
// service's JSON 1.1 protocol (POST /, X-Amz-Target
// AWSCognitoIdentityService.<Op>, Content-Type application/x-amz-json-1.1,
// errors as {"__type":…,"message":…}) well enough for the real SDK client:
// GetId and GetCredentialsForIdentity for the identities of one identity pool:
// unauthenticated (guest) ones by default, authenticated ones after
// RequireLogin. Every answer carries a Date header from the fake's clock
// (real time plus SetClockOffset). All methods are safe for concurrent use.
type Cognito struct {
	t      testing.TB
	srv    *httptest.Server
	region string
	poolID string

	mu          sync.Mutex
	identities  map[string]bool
	authIDs     map[string]bool   // identities created or linked with a login
	loginIDs    map[string]string // login provider → its user's identity id
	login       requiredLogin
	logins      []LoginsCall
	unavailable bool
	echoing     bool // refuse every call, echoing its body (SetEchoingErrors)
	failures    int  // answers given while unavailable (alternates 503 and 500)
	offset      time.Duration
	lifetime    time.Duration
	onIssue     []func(akid, secret, token string, expires time.Time)
	issued      []IssuedCredentials
	getIDCalls  int
	credCalls   int
	signedCalls int
}

// IssuedCredentials are credentials the fake handed out.
type IssuedCredentials struct {
	IdentityID   string
	AccessKeyID  string
	SecretKey    string
	SessionToken string
	Expires      time.Time // as sent: whole seconds, the fake's clock
}

// LoginsCall is what one GetId or GetCredentialsForIdentity request carried
// in its Logins map (requests that could be parsed, refused ones included).
type LoginsCall struct {
	Op         string            // "GetId" or "GetCredentialsForIdentity"
	IdentityID string            // GetCredentialsForIdentity only
	Logins     map[string]string // nil when the request had none
}

type requiredLogin struct{ provider, token string }

// CognitoTarget is the X-Amz-Target prefix of Cognito Identity operations.
const CognitoTarget = "AWSCognitoIdentityService."

// NewCognito starts a fake with one identity pool in eu-west-1 (PoolID) and a
// credential lifetime of one hour; it stops when the test ends.
func NewCognito(t testing.TB) *Cognito {
	t.Helper()
	c := &Cognito{
		t:          t,
		region:     "eu-west-1",
		identities: map[string]bool{},
		authIDs:    map[string]bool{},
		loginIDs:   map[string]string{},
		lifetime:   time.Hour,
	}
	c.poolID = c.region + ":" + cognitoUUID()
	c.srv = httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	t.Cleanup(c.srv.Close)
	return c
}

// URL is the endpoint to give the SDK client (BaseEndpoint), http://127.0.0.1:P.
func (c *Cognito) URL() string { return c.srv.URL }

// PoolID is the identity pool id the fake serves.
func (c *Cognito) PoolID() string { return c.poolID }

// Region is the region of the pool (and of the identities it creates).
func (c *Cognito) Region() string { return c.region }

// SetUnavailable makes every request fail (alternately 503 ServiceUnavailable
// and 500 InternalErrorException) until called with false.
func (c *Cognito) SetUnavailable(v bool) {
	c.mu.Lock()
	c.unavailable = v
	c.mu.Unlock()
}

// SetEchoingErrors makes every request fail with NotAuthorizedException (HTTP 400) whose message
// quotes the request body, and with it any login token, as a careless server might; until called
// with false. Tests use it to check that such a secret is scrubbed from logs and status.
func (c *Cognito) SetEchoingErrors(v bool) {
	c.mu.Lock()
	c.echoing = v
	c.mu.Unlock()
}

// SetClockOffset shifts the fake's clock (Date headers, credential expiry).
func (c *Cognito) SetClockOffset(d time.Duration) {
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
}

// SetCredentialLifetime sets how long credentials issued from now on last.
func (c *Cognito) SetCredentialLifetime(d time.Duration) {
	c.mu.Lock()
	c.lifetime = d
	c.mu.Unlock()
}

// OnIssue registers fn to be called with every credential set the fake issues,
// before the answer is sent (e.g. IoT.AllowCredentials, to link the two fakes).
func (c *Cognito) OnIssue(fn func(akid, secret, token string, expires time.Time)) {
	c.mu.Lock()
	c.onIssue = append(c.onIssue, fn)
	c.mu.Unlock()
}

// RequireLogin makes the pool an authenticated-only one (guest access off)
// with one authentication provider: GetId and GetCredentialsForIdentity must
// carry Logins {provider: token}. A call without Logins, with another
// provider or with a different token gets NotAuthorizedException (HTTP 400),
// as from AWS; the answer never repeats the token. Calling it again with a new
// token simulates a rotation (the old token is refused from then on; the
// provider's user keeps its identity id). An empty provider restores guest
// access and refuses every Logins again (the default: no provider is
// configured).
func (c *Cognito) RequireLogin(provider, token string) {
	c.mu.Lock()
	c.login = requiredLogin{provider: provider, token: token}
	c.mu.Unlock()
}

// Logins returns the Logins of every GetId and GetCredentialsForIdentity
// request received so far, oldest first (the maps are copies).
func (c *Cognito) Logins() []LoginsCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]LoginsCall, len(c.logins))
	for i, l := range c.logins {
		out[i] = LoginsCall{Op: l.Op, IdentityID: l.IdentityID, Logins: copyLogins(l.Logins)}
	}
	return out
}

// Authenticated reports whether id was created (or linked) with a login.
func (c *Cognito) Authenticated(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authIDs[id]
}

func copyLogins(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkLogins decides a request's Logins the way Cognito does. It records
// the call, and returns the NotAuthorizedException message ("" = accepted)
// and whether the caller proved the pool's login. The caller holds c.mu.
func (c *Cognito) checkLogins(op, id string, logins map[string]string) (refusal string, authenticated bool) {
	c.logins = append(c.logins, LoginsCall{Op: op, IdentityID: id, Logins: copyLogins(logins)})
	req := c.login
	if len(logins) == 0 {
		switch {
		case id != "" && c.authIDs[id]:
			return fmt.Sprintf("Access to Identity '%s' is forbidden.", id), false
		case req.provider != "":
			return "Unauthenticated access is not supported for this identity pool.", false
		}
		return "", false
	}
	for p := range logins {
		if req.provider == "" || p != req.provider {
			return "Token is not from a supported provider of this identity pool.", false
		}
	}
	if logins[req.provider] != req.token {
		return "Invalid login token. Token signature invalid.", false
	}
	return "", true
}

// DeleteIdentity forgets an identity, as if deleted in the console: further
// GetCredentialsForIdentity calls for it get ResourceNotFoundException.
func (c *Cognito) DeleteIdentity(id string) {
	c.mu.Lock()
	delete(c.identities, id)
	c.mu.Unlock()
}

// Identities returns the ids of the identities the pool knows.
func (c *Cognito) Identities() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.identities))
	for id := range c.identities {
		ids = append(ids, id)
	}
	return ids
}

// GetIdCalls counts GetId requests received (failed ones included).
func (c *Cognito) GetIdCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getIDCalls
}

// GetCredentialsCalls counts GetCredentialsForIdentity requests received (failed ones included).
func (c *Cognito) GetCredentialsCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credCalls
}

// SignedCalls counts requests that carried an Authorization header (the
// unauthenticated flow needs none; AWS would accept them all the same).
func (c *Cognito) SignedCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signedCalls
}

// Issued returns every credential set issued so far, oldest first.
func (c *Cognito) Issued() []IssuedCredentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]IssuedCredentials(nil), c.issued...)
}

// Now is the fake's clock: real time plus the offset.
func (c *Cognito) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *Cognito) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", c.Now().UTC().Format(http.TimeFormat))
	w.Header().Set("X-Amzn-Requestid", cognitoUUID())
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		cognitoError(w, http.StatusNotFound, "UnknownOperationException", "only POST / is served")
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, CognitoTarget)
	if !ok {
		cognitoError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("unknown X-Amz-Target %q", target))
		return
	}
	c.mu.Lock()
	switch op {
	case "GetId":
		c.getIDCalls++
	case "GetCredentialsForIdentity":
		c.credCalls++
	}
	if r.Header.Get("Authorization") != "" {
		c.signedCalls++
	}
	unavailable, echoing := c.unavailable, c.echoing
	if unavailable {
		c.failures++
	}
	odd := c.failures%2 == 1
	c.mu.Unlock()

	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		cognitoError(w, http.StatusBadRequest, "SerializationException", fmt.Sprintf("Content-Type %q is not application/x-amz-json-1.1", ct))
		return
	}

	if unavailable {
		if odd {
			cognitoError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "Service is unavailable (fake)")
		} else {
			cognitoError(w, http.StatusInternalServerError, "InternalErrorException", "An internal error occurred (fake)")
		}
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		cognitoError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if echoing {
		cognitoError(w, http.StatusBadRequest, "NotAuthorizedException", "Invalid login token in request "+string(body))
		return
	}
	switch op {
	case "GetId":
		c.getID(w, body)
	case "GetCredentialsForIdentity":
		c.getCredentials(w, body)
	default:
		cognitoError(w, http.StatusBadRequest, "UnknownOperationException", "operation "+op+" is not implemented by the fake")
	}
}

func (c *Cognito) getID(w http.ResponseWriter, body []byte) {
	var in struct {
		IdentityPoolId string
		AccountId      string
		Logins         map[string]string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		cognitoError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if in.IdentityPoolId == "" {
		cognitoError(w, http.StatusBadRequest, "InvalidParameterException", "1 validation error detected: Value null at 'identityPoolId' failed to satisfy constraint: Member must not be null")
		return
	}
	if in.IdentityPoolId != c.poolID {
		cognitoError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("IdentityPool '%s' not found.", in.IdentityPoolId))
		return
	}
	c.mu.Lock()
	refusal, authenticated := c.checkLogins("GetId", "", in.Logins)
	if refusal != "" {
		c.mu.Unlock()
		cognitoError(w, http.StatusBadRequest, "NotAuthorizedException", refusal)
		return
	}
	var id string
	if authenticated {
		id = c.loginIDs[c.login.provider] // the same user gets the same identity
		if id == "" || !c.identities[id] {
			id = c.region + ":" + cognitoUUID()
			c.loginIDs[c.login.provider] = id
		}
		c.authIDs[id] = true
	} else {
		id = c.region + ":" + cognitoUUID()
	}
	c.identities[id] = true
	c.mu.Unlock()
	cognitoJSON(w, map[string]any{"IdentityId": id})
}

func (c *Cognito) getCredentials(w http.ResponseWriter, body []byte) {
	var in struct {
		IdentityId    string
		CustomRoleArn string
		Logins        map[string]string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		cognitoError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	c.mu.Lock()
	known := c.identities[in.IdentityId]
	lifetime := c.lifetime
	now := time.Now().Add(c.offset)
	refusal, authenticated := c.checkLogins("GetCredentialsForIdentity", in.IdentityId, in.Logins)
	if known && refusal == "" && authenticated {
		c.authIDs[in.IdentityId] = true // a guest identity presenting a login is linked to it, as in AWS
	}
	c.mu.Unlock()
	if !known {
		cognitoError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Identity '%s' not found.", in.IdentityId))
		return
	}
	if refusal != "" {
		cognitoError(w, http.StatusBadRequest, "NotAuthorizedException", refusal)
		return
	}
	ic := IssuedCredentials{
		IdentityID:   in.IdentityId,
		AccessKeyID:  "ASIA" + cognitoRandom(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		SecretKey:    cognitoRandom(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		SessionToken: cognitoToken(),
		Expires:      now.Add(lifetime).Truncate(time.Second),
	}
	c.mu.Lock()
	c.issued = append(c.issued, ic)
	hooks := append([]func(string, string, string, time.Time){}, c.onIssue...)
	c.mu.Unlock()
	for _, fn := range hooks {
		fn(ic.AccessKeyID, ic.SecretKey, ic.SessionToken, ic.Expires)
	}
	cognitoJSON(w, map[string]any{
		"IdentityId": ic.IdentityID,
		"Credentials": map[string]any{
			"AccessKeyId":  ic.AccessKeyID,
			"SecretKey":    ic.SecretKey,
			"SessionToken": ic.SessionToken,
			"Expiration":   ic.Expires.Unix(), // epoch seconds, a JSON number, as AWS sends it
		},
	})
}

func cognitoJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

func cognitoError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", typ+":")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func cognitoUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cognitoRandom(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// cognitoToken looks like a real session token: long standard base64 with
// '+', '/' and '=' that need escaping in a URL.
func cognitoToken() string {
	b := make([]byte, 301)
	_, _ = rand.Read(b)
	b[0], b[1], b[2] = 0xfb, 0xff, 0xbf // guarantees '+' and '/' appear
	return "IQoJb3JpZ2luX2Vj" + base64.StdEncoding.EncodeToString(b)
}
