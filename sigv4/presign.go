package sigv4

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/edge-agent/edge-agent/awsregion"
)

// Service is the SigV4 service name of the AWS IoT Core data plane (device
// gateway) used in the credential scope.
const Service = "iotdevicegateway"

// emptyPayloadHash is the hex SHA-256 of an empty body: a WebSocket upgrade
// request has no payload.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// tokenParam is the query parameter that carries the session token. AWS IoT
// requires it to be appended after signing, outside the canonical request.
const tokenParam = "X-Amz-Security-Token"

// Credentials are AWS credentials. SessionToken is empty for long-term IAM
// user keys and set for temporary (STS, Cognito) credentials.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// ErrInvalidInput is wrapped by every error PresignIoT returns for bad
// arguments (as opposed to a failure inside the signer).
var ErrInvalidInput = errors.New("sigv4: invalid input")

// signerOptions configure the SDK signer.
func signerOptions(o *v4.SignerOptions) {
	// Nothing may move from headers into the query: the request has no
	// headers but Host, and the query must hold exactly what we expect.
	o.DisableHeaderHoisting = true
	// Belt and braces: the credentials passed to the signer never carry the
	// token, and the signer is told not to add one either.
	o.DisableSessionToken = true
}

// PresignIoT presigns rawURL (wss://host[:port]/path, normally
// wss://<prefix>-ats.iot.<region>.amazonaws.com/mqtt) for AWS IoT Core at time
// now and returns the full URL to dial.
//
// The query gets X-Amz-Algorithm, X-Amz-Credential (scope
// <yyyymmdd>/<region>/iotdevicegateway/aws4_request), X-Amz-Date,
// X-Amz-SignedHeaders=host and, last, X-Amz-Signature; when creds has a
// session token, "&X-Amz-Security-Token=<token, percent-encoded>" follows the
// signature. An explicit default port (:443) is removed and the host is
// lower-cased, so the Host header a WebSocket client sends is exactly the
// host that was signed. Query parameters already in rawURL are kept and
// signed; X-Amz-* parameters there are refused (the URL is already signed).
//
// The returned URL contains a signature and maybe a session token: treat it
// as a secret and never log it.
func PresignIoT(rawURL, region string, creds Credentials, now time.Time) (string, error) {
	u, err := checkURL(rawURL)
	if err != nil {
		return "", err
	}
	if region == "" {
		return "", fmt.Errorf("%w: region is empty: set broker.region (e.g. eu-west-1) or use an *.iot.<region>.amazonaws.com endpoint", ErrInvalidInput)
	}
	if !awsregion.Valid(region) {
		return "", fmt.Errorf("%w: region %q is not an AWS region name like eu-west-1", ErrInvalidInput, region)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return "", fmt.Errorf("%w: AWS credentials incomplete (access key id set: %t, secret access key set: %t)",
			ErrInvalidInput, creds.AccessKeyID != "", creds.SecretAccessKey != "")
	}
	if now.IsZero() {
		return "", fmt.Errorf("%w: signing time is zero", ErrInvalidInput)
	}

	// The SDK signs HTTP requests; a WebSocket handshake is an HTTP GET over
	// TLS, so sign the https form of the URL and hand back the wss form.
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "https", Host: u.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Host:   u.Host,
		Header: http.Header{},
	}
	// A fresh signer per call, on purpose: the SDK signer caches the derived
	// signing key by access key id, region, service and day — not by secret —
	// so a shared signer would keep signing with an old secret after a
	// change under the same key id. Deriving the key costs four HMACs.
	signer := v4.NewSigner(signerOptions)
	signed, _, err := signer.PresignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
		req, emptyPayloadHash, Service, region, now.UTC())
	if err != nil {
		return "", fmt.Errorf("sigv4: presign %s: %w", redact(u), err)
	}
	su, err := url.Parse(signed)
	if err != nil {
		return "", fmt.Errorf("sigv4: signer returned an unparsable URL for %s: %w", redact(u), err)
	}
	su.Scheme = "wss"
	out := su.String()
	if creds.SessionToken != "" {
		out += "&" + tokenParam + "=" + escape(creds.SessionToken)
	}
	return out, nil
}

// checkURL parses and normalises rawURL, refusing anything that is not a
// plain wss URL the signer can sign unambiguously.
func checkURL(rawURL string) (*url.URL, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("%w: URL is empty: set broker.url to wss://<endpoint>/mqtt", ErrInvalidInput)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %v", ErrInvalidInput, rawURL, err)
	}
	// Never echo a whole URL back (it might already hold a signature).
	shown := redact(u)
	switch {
	case !strings.EqualFold(u.Scheme, "wss"):
		return nil, fmt.Errorf("%w: URL %s: scheme must be wss (AWS IoT only accepts MQTT over WebSocket with TLS)", ErrInvalidInput, shown)
	case u.Opaque != "":
		return nil, fmt.Errorf("%w: URL %s: expected wss://host/path", ErrInvalidInput, shown)
	case u.User != nil:
		return nil, fmt.Errorf("%w: URL %s: user information is not allowed in the URL", ErrInvalidInput, shown)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: URL %s: host is empty", ErrInvalidInput, shown)
	case u.Path == "" || u.Path == "/":
		return nil, fmt.Errorf("%w: URL %s: path is empty: AWS IoT serves MQTT at /mqtt", ErrInvalidInput, shown)
	case u.Fragment != "" || strings.Contains(rawURL, "#"):
		return nil, fmt.Errorf("%w: URL %s: a fragment (#…) is not allowed", ErrInvalidInput, shown)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %s: query: %v", ErrInvalidInput, shown, err)
	}
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			return nil, fmt.Errorf("%w: URL %s already carries %s: pass the unsigned URL", ErrInvalidInput, shown, k)
		}
	}
	if port := u.Port(); port != "" {
		if port == "443" {
			u.Host = u.Hostname()
			if strings.Contains(u.Host, ":") { // IPv6 literal
				u.Host = "[" + u.Host + "]"
			}
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: URL %s: bad port %q", ErrInvalidInput, shown, port)
		}
	}
	u.Scheme = "wss"
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// redact renders u without its query, for error messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.User, c.Fragment, c.RawFragment = "", false, nil, "", ""
	return c.String()
}

// escape percent-encodes s the SigV4 way (RFC 3986: everything but
// A-Z a-z 0-9 - _ . ~), which is also what encodeURIComponent does for the
// base64 alphabet of session tokens (+ / =).
func escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
