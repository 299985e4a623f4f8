package fakeaws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file verifies presigned AWS IoT WebSocket URLs. It is deliberately
// written from AWS's SigV4 description and shares no code with the signer
// under test (neither the SDK nor package sigv4).

// Reasons recorded in Attempt.Reason (and why the fake answered 403).
const (
	ReasonWrongPath          = "wrong-path"          // path is not /mqtt
	ReasonNotWebSocket       = "not-websocket"       // not a WebSocket upgrade request
	ReasonNoSubprotocol      = "no-mqtt-subprotocol" // Sec-WebSocket-Protocol lacks "mqtt"
	ReasonMissingAuth        = "missing-auth"        // no SigV4 query parameters at all
	ReasonMalformed          = "malformed-query"     // a parameter missing, repeated or unparsable
	ReasonBadScope           = "bad-scope"           // credential scope malformed or its date ≠ X-Amz-Date
	ReasonWrongService       = "wrong-service"       // scope service is not iotdevicegateway
	ReasonWrongRegion        = "wrong-region"        // scope region is not the endpoint's
	ReasonClockSkew          = "clock-skew"          // X-Amz-Date outside ±MaxSkew of the fake's clock
	ReasonURLExpired         = "url-expired"         // X-Amz-Expires given and passed
	ReasonUnknownCredentials = "unknown-credentials" // access key id not registered
	ReasonExpiredCredentials = "expired-credentials" // registered credentials expired (fake's clock)
	ReasonMissingToken       = "missing-token"       // temporary credentials without X-Amz-Security-Token
	ReasonBadToken           = "bad-token"           // token differs from the registered one
	ReasonSignedHeaders      = "bad-signed-headers"  // X-Amz-SignedHeaders malformed or without host
	ReasonTokenSigned        = "token-signed"        // the token was part of the canonical request
	ReasonBadSignature       = "bad-signature"       // signature does not match
	ReasonUpgradeFailed      = "upgrade-failed"      // verified, but the WebSocket handshake failed
)

const (
	iotService   = "iotdevicegateway"
	algorithm    = "AWS4-HMAC-SHA256"
	amzDateForm  = "20060102T150405Z"
	scopeDayForm = "20060102"
)

// refusal is a verification failure: the reason code for Attempts and the
// message AWS would put in the 403 body.
type refusal struct {
	reason, message string
}

// sigInfo is what verification learned about the request, filled in as far
// as it got (for the Attempt record).
type sigInfo struct {
	accessKeyID, region, service string
	signedAt                     time.Time
	token                        bool
}

// verifyPresigned checks r against AWS IoT's rules for a presigned
// WebSocket upgrade at time now. It returns nil when the request is
// authorized.
func verifyPresigned(r *http.Request, now time.Time, region string, maxSkew time.Duration, creds *CredStore, info *sigInfo) *refusal {
	params, err := parseQueryStrict(r.URL.RawQuery)
	if err != nil {
		return &refusal{ReasonMalformed, "Invalid query string: " + err.Error()}
	}
	anyAuth := false
	for k := range params {
		if strings.HasPrefix(k, "X-Amz-") {
			anyAuth = true
		}
	}
	if !anyAuth {
		return &refusal{ReasonMissingAuth, "Missing Authentication Token"}
	}
	token, hasToken := params["X-Amz-Security-Token"]
	info.token = hasToken
	for _, k := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if _, ok := params[k]; !ok {
			return &refusal{ReasonMalformed, "AWS query-string parameters must include '" + k + "'. Re-examine the query-string parameters."}
		}
	}
	if params["X-Amz-Algorithm"] != algorithm {
		return &refusal{ReasonMalformed, "Unsupported AWS 'algorithm': '" + params["X-Amz-Algorithm"] + "'"}
	}

	// Credential: AKID/yyyymmdd/region/service/aws4_request.
	cred := params["X-Amz-Credential"]
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[0] == "" {
		return &refusal{ReasonBadScope, "Credential should be scoped to a valid region, not '" + cred + "'."}
	}
	info.accessKeyID, info.region, info.service = parts[0], parts[2], parts[3]
	signedAt, err := time.Parse(amzDateForm, params["X-Amz-Date"])
	if err != nil {
		return &refusal{ReasonMalformed, "Invalid X-Amz-Date: " + strconv.Quote(params["X-Amz-Date"])}
	}
	info.signedAt = signedAt
	if parts[4] != "aws4_request" {
		return &refusal{ReasonBadScope, "Credential should be scoped with a valid terminator: 'aws4_request', not '" + parts[4] + "'."}
	}
	if parts[1] != signedAt.Format(scopeDayForm) {
		return &refusal{ReasonBadScope, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
			parts[1] + "' != '" + signedAt.Format(scopeDayForm) + "', from '" + params["X-Amz-Date"] + "'."}
	}
	if parts[3] != iotService {
		return &refusal{ReasonWrongService, "Credential should be scoped to correct service: '" + iotService + "'. "}
	}
	if parts[2] != region {
		return &refusal{ReasonWrongRegion, "Credential should be scoped to a valid region, not '" + parts[2] + "'. "}
	}

	if ref := checkTime(params, signedAt, now, maxSkew); ref != nil {
		return ref
	}

	// Credentials.
	c, ok := creds.Lookup(info.accessKeyID)
	if !ok {
		return &refusal{ReasonUnknownCredentials, "The security token included in the request is invalid."}
	}
	if !c.Expires.IsZero() && !now.Before(c.Expires) {
		return &refusal{ReasonExpiredCredentials, "The security token included in the request is expired"}
	}
	switch {
	case c.SessionToken != "" && !hasToken:
		return &refusal{ReasonMissingToken, "The security token included in the request is invalid."}
	case hasToken && token != c.SessionToken:
		return &refusal{ReasonBadToken, "The security token included in the request is invalid."}
	}

	names, ref := signedHeaderNames(params["X-Amz-SignedHeaders"])
	if ref != nil {
		return ref
	}

	// Signature: first the AWS IoT way (token outside the canonical
	// request), then, only to tell the failures apart, with the token inside.
	key := signingKey(c.SecretAccessKey, parts[1], parts[2], parts[3])
	want := params["X-Amz-Signature"]
	sig := signature(key, r, params, names, signedAt, cred[len(parts[0])+1:], false)
	if hmac.Equal([]byte(sig), []byte(want)) {
		return nil
	}
	if hasToken && hmac.Equal([]byte(signature(key, r, params, names, signedAt, cred[len(parts[0])+1:], true)), []byte(want)) {
		return &refusal{ReasonTokenSigned, "The request signature we calculated does not match the signature you provided. " +
			"(X-Amz-Security-Token must not be part of the canonical request for AWS IoT: append it after signing.)"}
	}
	return &refusal{ReasonBadSignature, "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
}

// checkTime refuses a request signed more than maxSkew away from now, or whose X-Amz-Expires has
// passed.
func checkTime(params map[string]string, signedAt, now time.Time, maxSkew time.Duration) *refusal {
	mins := int(maxSkew / time.Minute)
	switch d := now.Sub(signedAt); {
	case d > maxSkew:
		return &refusal{ReasonClockSkew, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d min.)",
			signedAt.Format(amzDateForm), now.Add(-maxSkew).UTC().Format(amzDateForm), now.UTC().Format(amzDateForm), mins)}
	case d < -maxSkew:
		return &refusal{ReasonClockSkew, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %d min.)",
			signedAt.Format(amzDateForm), now.Add(maxSkew).UTC().Format(amzDateForm), now.UTC().Format(amzDateForm), mins)}
	}
	if exp, ok := params["X-Amz-Expires"]; ok {
		secs, err := strconv.Atoi(exp)
		if err != nil || secs < 0 {
			return &refusal{ReasonMalformed, "X-Amz-Expires must be non-negative"}
		}
		if now.After(signedAt.Add(time.Duration(secs) * time.Second)) {
			return &refusal{ReasonURLExpired, "Request has expired"}
		}
	}
	return nil
}

// signedHeaderNames splits X-Amz-SignedHeaders, which must be lower-case, sorted, unique and name
// host.
func signedHeaderNames(signedHeaders string) ([]string, *refusal) {
	names := strings.Split(signedHeaders, ";")
	hasHost := false
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && names[i-1] >= n) {
			return nil, &refusal{ReasonSignedHeaders, "X-Amz-SignedHeaders must be lower-case, sorted and unique: '" + signedHeaders + "'"}
		}
		if n == "host" {
			hasHost = true
		}
	}
	if !hasHost {
		return nil, &refusal{ReasonSignedHeaders, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."}
	}
	return names, nil
}

// parseQueryStrict decodes a raw query into single values, refusing
// repeated names and bad escapes. '+' decodes to a space, as AWS does, so an
// unescaped '+' in a token shows up as a token mismatch.
func parseQueryStrict(raw string) (map[string]string, error) {
	out := map[string]string{}
	if raw == "" {
		return out, nil
	}
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("bad escape in parameter name %q", k)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("bad escape in the value of %s", dk)
		}
		if _, dup := out[dk]; dup {
			return nil, fmt.Errorf("parameter %s given more than once", dk)
		}
		out[dk] = dv
	}
	return out, nil
}

// signature computes the hex SigV4 signature of r's presigned form.
func signature(key []byte, r *http.Request, params map[string]string, signedHeaders []string, signedAt time.Time, scope string, withToken bool) string {
	// Canonical query: every parameter but the signature (and, for AWS IoT,
	// the token), names and values URI-encoded, sorted.
	type kv struct{ k, v string }
	var q []kv
	for k, v := range params {
		if k == "X-Amz-Signature" || (k == "X-Amz-Security-Token" && !withToken) {
			continue
		}
		q = append(q, kv{uriEncode(k, true), uriEncode(v, true)})
	}
	sort.Slice(q, func(i, j int) bool {
		if q[i].k != q[j].k {
			return q[i].k < q[j].k
		}
		return q[i].v < q[j].v
	})
	var cq strings.Builder
	for i, p := range q {
		if i > 0 {
			cq.WriteByte('&')
		}
		cq.WriteString(p.k + "=" + p.v)
	}

	// Canonical headers: the Host the client sent, others as received with
	// surrounding and repeated spaces squeezed.
	var ch strings.Builder
	for _, name := range signedHeaders {
		var value string
		if name == "host" {
			value = r.Host
		} else {
			value = strings.Join(r.Header.Values(name), ",")
		}
		ch.WriteString(name + ":" + strings.Join(strings.Fields(value), " ") + "\n")
	}

	// Canonical URI: each path segment URI-encoded (twice for non-S3
	// services, i.e. the already-escaped path encoded once more).
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonicalURI := uriEncode(path, false)

	emptyHash := sha256.Sum256(nil)
	creq := strings.Join([]string{
		r.Method, canonicalURI, cq.String(), ch.String(), strings.Join(signedHeaders, ";"), hex.EncodeToString(emptyHash[:]),
	}, "\n")
	creqHash := sha256.Sum256([]byte(creq))
	sts := algorithm + "\n" + signedAt.Format(amzDateForm) + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	return hex.EncodeToString(hmacSHA256(key, sts))
}

func signingKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// uriEncode is SigV4's UriEncode: unreserved characters stay, every other
// byte becomes %XX (upper case); '/' stays when encodeSlash is false.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
