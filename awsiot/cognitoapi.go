package awsiot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is the whole Amazon Cognito Identity client edge-agent needs: the
// two unsigned calls of the identity pool flow, GetId and
// GetCredentialsForIdentity, over the service's JSON 1.1 protocol (POST / with
// X-Amz-Target AWSCognitoIdentityService.<Op> and Content-Type
// application/x-amz-json-1.1; an error is a non-2xx answer naming its code in
// the X-Amzn-ErrorType header and/or the body's "__type"). It replaces
// aws-sdk-go-v2's service client, which cost about 1 MB of the binary; the
// SDK remains a test dependency, as the oracle this client is compared with
// (cognitoapi_sdk_test.go).

// Bounds on one Cognito call.
const (
	cognitoMaxAttempts    = 3                // attempts per call, as the SDK's standard retryer
	cognitoMaxBackoff     = 2 * time.Second  // longest wait between attempts
	cognitoAttemptTimeout = 30 * time.Second // one request, answer read included
	cognitoMaxBody        = 64 << 10         // bytes read of an answer; Cognito's are under 4 KiB
)

const (
	cognitoTarget      = "AWSCognitoIdentityService."
	cognitoContentType = "application/x-amz-json-1.1"
)

// APIError is an error answer of the Cognito Identity service.
type APIError struct {
	Code      string // e.g. "NotAuthorizedException"; "UnknownError" when the answer names none
	Message   string // the service's explanation; may be empty
	Status    int    // HTTP status
	RequestID string // X-Amzn-RequestId, for AWS support; may be empty
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s (HTTP %d", e.Code, e.Status)
	if e.RequestID != "" {
		s += ", request id " + e.RequestID
	}
	s += ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// is reports whether the error's code is code (case-insensitively, as the SDK
// matches its modelled exceptions).
func (e *APIError) is(code string) bool { return strings.EqualFold(e.Code, code) }

// cognitoCredentials are what GetCredentialsForIdentity returns.
type cognitoCredentials struct {
	AccessKeyID  string
	SecretKey    string
	SessionToken string
	Expiration   time.Time // zero when the answer has none
}

// httpDoer sends one HTTP request (an *http.Client, or observingClient).
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// cognitoClient calls the Cognito Identity service of one region. It is safe
// for concurrent use.
type cognitoClient struct {
	url      string // POST target: https://cognito-identity.<region>.<dns suffix>/ or the override
	hc       httpDoer
	attempts int                           // per call, ≥ 1
	backoff  func(retry int) time.Duration // wait before retry 1, 2, …
}

// newCognitoClient builds the client for region, or for endpoint when that is
// set (cognito.endpoint / AWS_ENDPOINT_URL_COGNITO_IDENTITY, already checked
// to be an http(s) URL).
func newCognitoClient(region, endpoint string, hc httpDoer) *cognitoClient {
	if endpoint == "" {
		endpoint = cognitoEndpoint(region)
	}
	// The operation path is "/", joined to the endpoint's path as the SDK
	// does: "https://h" → "https://h/", "https://h/p" stays.
	if _, rest, _ := strings.Cut(endpoint, "://"); !strings.Contains(rest, "/") {
		endpoint += "/"
	}
	return &cognitoClient{url: endpoint, hc: hc, attempts: cognitoMaxAttempts, backoff: cognitoBackoff}
}

// cognitoEndpoint is the service's endpoint in region: the SDK's endpoint
// rules without FIPS and dual-stack, i.e. https://cognito-identity.<region>.
// followed by the DNS suffix of the region's partition.
func cognitoEndpoint(region string) string {
	suffix := "amazonaws.com"
	for _, p := range [...]struct{ prefix, suffix string }{
		{"cn-", "amazonaws.com.cn"},
		{"eusc-", "amazonaws.eu"},
		{"us-iso-", "c2s.ic.gov"},
		{"us-isob-", "sc2s.sgov.gov"},
		{"us-isof-", "csp.hci.ic.gov"},
		{"eu-isoe-", "cloud.adc-e.uk"},
	} {
		if strings.HasPrefix(region, p.prefix) {
			suffix = p.suffix
			break
		}
	}
	return "https://cognito-identity." + region + "." + suffix
}

// getIDInput and the other wire types hold exactly the members edge-agent
// sends and reads.
type getIDInput struct {
	AccountId      string `json:",omitempty"`
	IdentityPoolId string
	Logins         map[string]string `json:",omitempty"`
}

type getCredentialsInput struct {
	IdentityId string
	Logins     map[string]string `json:",omitempty"`
}

// GetId returns the identity id of the caller (a new one for a guest, the
// login's for an authenticated identity) in pool.
func (c *cognitoClient) GetId(ctx context.Context, pool string, logins map[string]string) (string, error) {
	var out struct{ IdentityId *string }
	if err := c.call(ctx, "GetId", getIDInput{IdentityPoolId: pool, Logins: logins}, &out); err != nil {
		return "", err
	}
	if out.IdentityId == nil {
		return "", nil
	}
	return *out.IdentityId, nil
}

// GetCredentialsForIdentity returns temporary credentials for identity id.
// Missing members are left empty; the caller decides what is incomplete.
func (c *cognitoClient) GetCredentialsForIdentity(ctx context.Context, id string, logins map[string]string) (cognitoCredentials, error) {
	var out struct {
		Credentials *struct {
			AccessKeyId  string
			SecretKey    string
			SessionToken string
			Expiration   *json.Number // epoch seconds, maybe with a fraction
		}
	}
	if err := c.call(ctx, "GetCredentialsForIdentity", getCredentialsInput{IdentityId: id, Logins: logins}, &out); err != nil {
		return cognitoCredentials{}, err
	}
	if out.Credentials == nil {
		return cognitoCredentials{}, nil
	}
	cr := out.Credentials
	res := cognitoCredentials{AccessKeyID: cr.AccessKeyId, SecretKey: cr.SecretKey, SessionToken: cr.SessionToken}
	if cr.Expiration != nil {
		t, err := epochSeconds(*cr.Expiration)
		if err != nil {
			return cognitoCredentials{}, fmt.Errorf("the answer's Credentials.Expiration %q: %w", cr.Expiration.String(), err)
		}
		res.Expiration = t
	}
	return res, nil
}

// epochSeconds converts a JSON number of seconds since 1970 to a time with
// millisecond precision (the fraction beyond is dropped, as the SDK does).
func epochSeconds(n json.Number) (time.Time, error) {
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(f * 1000)).UTC(), nil
}

// call sends op with body in, retrying a transient failure (network,
// throttling, HTTP 5xx) up to c.attempts in all with jittered backoff, and
// decodes a 2xx answer into out. A failure is an *APIError when the service
// answered with an error.
func (c *cognitoClient) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding the %s request: %w", op, err)
	}
	for attempt := 1; ; attempt++ {
		retry, err := c.attempt(ctx, op, body, out)
		if err == nil {
			return nil
		}
		if !retry || attempt >= c.attempts || ctx.Err() != nil {
			if attempt > 1 {
				return fmt.Errorf("%w (attempt %d of %d)", err, attempt, c.attempts)
			}
			return err
		}
		t := time.NewTimer(c.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (attempt %d of %d; gave up waiting to retry: %w)", err, attempt, c.attempts, ctx.Err())
		case <-t.C:
		}
	}
}

// cognitoBackoff is the wait before retry number attempt (1, 2, …): full
// jitter up to 2^attempt seconds, capped at cognitoMaxBackoff, as the SDK's
// standard retryer.
func cognitoBackoff(attempt int) time.Duration {
	d := cognitoMaxBackoff
	if attempt < 8 {
		d = min(d, time.Second<<attempt)
	}
	return rand.N(d)
}

// attempt sends one request and reports whether a failure may be retried.
func (c *cognitoClient) attempt(ctx context.Context, op string, body []byte, out any) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, cognitoAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", cognitoContentType)
	req.Header.Set("X-Amz-Target", cognitoTarget+op)
	resp, err := c.hc.Do(req)
	if err != nil {
		return retryableNetError(ctx, err), err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, cognitoMaxBody+1))
	if err != nil {
		return retryableNetError(ctx, err), fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if len(data) > cognitoMaxBody {
		return false, fmt.Errorf("the answer (HTTP %d) is larger than %d bytes: is cognito.endpoint a Cognito Identity endpoint?", resp.StatusCode, cognitoMaxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e, err := parseCognitoError(resp, data)
		if err != nil {
			return retryableStatus(resp.StatusCode), err
		}
		return retryableStatus(e.Status) || cognitoRetryableCodes[e.Code], e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return false, fmt.Errorf("decoding the answer (HTTP %d, %d bytes): %w", resp.StatusCode, len(data), err)
	}
	return false, nil
}

// parseCognitoError reads an error answer the way the SDK's JSON 1.1
// deserializer does: the code from the X-Amzn-ErrorType header, else the
// body's "__type", else its "code"; "prefix#" and ":suffix" removed; the
// message from "message" or "Message". A body that is not a JSON object is an
// error of its own (not an *APIError) unless the header names the code.
func parseCognitoError(resp *http.Response, data []byte) (*APIError, error) {
	var info struct {
		Type    string `json:"__type"`
		Code    any
		Message string
	}
	header := resp.Header.Get("X-Amzn-ErrorType")
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &info); err != nil && header == "" {
			return nil, fmt.Errorf("HTTP %d with a %d-byte answer that is not a Cognito error (Content-Type %q): is a proxy in the way, or cognito.endpoint wrong?",
				resp.StatusCode, len(data), resp.Header.Get("Content-Type"))
		}
	}
	e := &APIError{Code: "UnknownError", Message: info.Message, Status: resp.StatusCode, RequestID: resp.Header.Get("X-Amzn-RequestId")}
	code, _ := info.Code.(string)
	for _, c := range []string{header, info.Type, code} {
		if c = sanitizeErrorCode(c); c != "" {
			e.Code = c
			break
		}
	}
	return e, nil
}

// sanitizeErrorCode keeps what is before the first ':' and then what is after
// the first '#' ("aws.cognito#NotAuthorizedException:http://…" →
// "NotAuthorizedException").
func sanitizeErrorCode(code string) string {
	code, _, _ = strings.Cut(code, ":")
	if _, after, ok := strings.Cut(code, "#"); ok {
		code = after
	}
	return code
}

// cognitoRetryableCodes are the error codes a later attempt may get past
// (the SDK's throttling and timeout codes that Cognito can send).
var cognitoRetryableCodes = map[string]bool{
	"TooManyRequestsException": true,
	"LimitExceededException":   true,
	"Throttling":               true,
	"ThrottlingException":      true,
	"RequestLimitExceeded":     true,
	"RequestTimeout":           true,
	"RequestTimeoutException":  true,
}

func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableNetError: a failure to connect or to read the answer is worth
// another attempt, unless the caller gave up or the host name does not exist.
func retryableNetError(ctx context.Context, err error) bool {
	var dns *net.DNSError
	if ctx.Err() != nil || errors.As(err, &dns) && dns.IsNotFound {
		return false
	}
	return true
}
