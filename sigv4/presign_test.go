package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// The SigV4 steps written out independently of the SDK, straight from AWS's
// "Create a signed AWS API request" page, for a presigned GET whose only
// signed header is host and whose payload is empty.

// refEncode is RFC 3986 percent-encoding: every byte but A-Z a-z 0-9 - _ . ~.
func refEncode(s string) string {
	out := ""
	for _, c := range []byte(s) {
		if strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~", c) >= 0 {
			out += string(rune(c))
		} else {
			out += fmt.Sprintf("%%%02X", c)
		}
	}
	return out
}

func refHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func refSHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type refResult struct {
	canonicalQuery   string
	canonicalRequest string
	stringToSign     string
	signature        string
}

// refSign computes the presigned-URL signature. params are extra query
// parameters (already decoded) that belong in the canonical query.
func refSign(host, path, region, akid, secret string, params map[string]string, now time.Time) refResult {
	amzDate := now.UTC().Format("20060102T150405Z")
	day := now.UTC().Format("20060102")
	scope := day + "/" + region + "/iotdevicegateway/aws4_request"

	q := map[string]string{
		"X-Amz-Algorithm":     "AWS4-HMAC-SHA256",
		"X-Amz-Credential":    akid + "/" + scope,
		"X-Amz-Date":          amzDate,
		"X-Amz-SignedHeaders": "host",
	}
	for k, v := range params {
		q[k] = v
	}
	// Step 1: canonical query string, sorted by encoded name.
	var pairs []string
	for k, v := range q {
		pairs = append(pairs, refEncode(k)+"="+refEncode(v))
	}
	sort.Strings(pairs)
	cq := strings.Join(pairs, "&")

	// Step 2: canonical request.
	cr := "GET\n" +
		path + "\n" +
		cq + "\n" +
		"host:" + host + "\n" + // canonical headers, each line ends in \n
		"\n" +
		"host\n" + // signed headers
		refSHA256Hex("") // hashed (empty) payload

	// Step 3: string to sign.
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + refSHA256Hex(cr)

	// Step 4: signing key, then signature.
	kDate := refHMAC([]byte("AWS4"+secret), day)
	kRegion := refHMAC(kDate, region)
	kService := refHMAC(kRegion, "iotdevicegateway")
	kSigning := refHMAC(kService, "aws4_request")
	sig := hex.EncodeToString(refHMAC(kSigning, sts))
	return refResult{canonicalQuery: cq, canonicalRequest: cr, stringToSign: sts, signature: sig}
}

var (
	testTime  = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	testCreds = Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	// A token made of the characters that need escaping, in the shape of a
	// real (base64) STS token.
	testToken = "IQoJb3JpZ2luX2VjE+/aWV1LXdlc3QtMSJH/MEUCIQD+x/y==AbC+/=="
)

// TestPresignFixedVector pins one literal signature, computed once by a
// third implementation (Python's hmac/hashlib). A regression in either the
// SDK path or refSign shows here even if both drift the same way.
func TestPresignFixedVector(t *testing.T) {
	const host = "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com"
	const wantSig = "abaa19ec946afb81af70a8d779058f5587de5b38d677c12d9f47702a8744126e"
	const wantQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" +
		"&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host"

	if ref := refSign(host, "/mqtt", "us-east-1", testCreds.AccessKeyID, testCreds.SecretAccessKey, nil, testTime); ref.signature != wantSig {
		t.Fatalf("reference implementation drifted: signature %s, want %s\ncanonical request:\n%s", ref.signature, wantSig, ref.canonicalRequest)
	}

	got, err := PresignIoT("wss://"+host+"/mqtt", "us-east-1", testCreds, testTime)
	if err != nil {
		t.Fatal(err)
	}
	want := "wss://" + host + "/mqtt?" + wantQuery + "&X-Amz-Signature=" + wantSig
	if got != want {
		t.Fatalf("PresignIoT:\n got %s\nwant %s", got, want)
	}

	// Same vector with a session token: the signature must not change (the
	// token is outside the canonical request) and the token follows it.
	creds := testCreds
	creds.SessionToken = testToken
	got, err = PresignIoT("wss://"+host+"/mqtt", "us-east-1", creds, testTime)
	if err != nil {
		t.Fatal(err)
	}
	want += "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2B%2FaWV1LXdlc3QtMSJH%2FMEUCIQD%2Bx%2Fy%3D%3DAbC%2B%2F%3D%3D"
	if got != want {
		t.Fatalf("PresignIoT with token:\n got %s\nwant %s", got, want)
	}
}

func TestPresignKnownAnswer(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		region   string
		token    string
		now      time.Time
		wantHost string            // host as signed and as left in the URL
		params   map[string]string // extra signed query parameters
	}{
		{name: "no token", url: "wss://abc123-ats.iot.eu-west-1.amazonaws.com/mqtt", region: "eu-west-1",
			now: testTime, wantHost: "abc123-ats.iot.eu-west-1.amazonaws.com"},
		{name: "token needing escapes", url: "wss://abc123-ats.iot.eu-west-1.amazonaws.com/mqtt", region: "eu-west-1",
			token: testToken, now: testTime, wantHost: "abc123-ats.iot.eu-west-1.amazonaws.com"},
		{name: "port kept in signed host", url: "wss://127.0.0.1:8443/mqtt", region: "us-east-1",
			token: testToken, now: time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), wantHost: "127.0.0.1:8443"},
		{name: "default port dropped", url: "wss://abc-ats.iot.ap-southeast-2.amazonaws.com:443/mqtt", region: "ap-southeast-2",
			token: "t", now: testTime, wantHost: "abc-ats.iot.ap-southeast-2.amazonaws.com"},
		{name: "host lower-cased, non-UTC time", url: "WSS://ABC-ats.IOT.eu-west-1.amazonaws.com/mqtt", region: "eu-west-1",
			now: time.Date(2015, 8, 31, 1, 0, 0, 0, time.FixedZone("x", 3*3600)), wantHost: "abc-ats.iot.eu-west-1.amazonaws.com"},
		{name: "extra query signed", url: "wss://h.example:9000/mqtt?b=2&a=x%20y%2Bz", region: "cn-north-1",
			token: testToken, now: testTime, wantHost: "h.example:9000", params: map[string]string{"a": "x y+z", "b": "2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			creds := testCreds
			creds.SessionToken = tc.token
			got, err := PresignIoT(tc.url, tc.region, creds, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			ref := refSign(tc.wantHost, "/mqtt", tc.region, creds.AccessKeyID, creds.SecretAccessKey, tc.params, tc.now)

			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			if u.Scheme != "wss" || u.Host != tc.wantHost || u.Path != "/mqtt" {
				t.Fatalf("got scheme %q host %q path %q, want wss %q /mqtt", u.Scheme, u.Host, u.Path, tc.wantHost)
			}

			// The raw query is exactly: canonical query, then the signature,
			// then (only with a token) the token — in that order.
			signedPart, sigAndTail, ok := strings.Cut(u.RawQuery, "&X-Amz-Signature=")
			if !ok {
				t.Fatalf("no X-Amz-Signature in %s", u.RawQuery)
			}
			if signedPart != ref.canonicalQuery {
				t.Errorf("query before the signature is not the canonical query:\n got %s\nwant %s", signedPart, ref.canonicalQuery)
			}
			sig, tail, _ := strings.Cut(sigAndTail, "&")
			if sig != ref.signature {
				t.Errorf("signature %s, want %s\ncanonical request:\n%s\nstring to sign:\n%s", sig, ref.signature, ref.canonicalRequest, ref.stringToSign)
			}
			if tc.token == "" {
				if tail != "" || strings.Contains(u.RawQuery, "Security-Token") {
					t.Errorf("no token given, but query ends with %q", tail)
				}
			} else {
				if want := "X-Amz-Security-Token=" + refEncode(tc.token); tail != want {
					t.Errorf("tail after the signature %q, want %q", tail, want)
				}
				if strings.Contains(signedPart, "Security-Token") {
					t.Errorf("token is inside the canonical query: %s", signedPart)
				}
				if strings.ContainsAny(tail[len("X-Amz-Security-Token="):], "+/=") {
					t.Errorf("token not escaped: %s", tail)
				}
				// The token round-trips through a standard query parser.
				if q := u.Query(); q.Get("X-Amz-Security-Token") != tc.token {
					t.Errorf("token decodes to %q, want %q", q.Get("X-Amz-Security-Token"), tc.token)
				}
				// The check above can fail: signing with the token in the
				// canonical query gives another signature.
				p := map[string]string{"X-Amz-Security-Token": tc.token}
				for k, v := range tc.params {
					p[k] = v
				}
				if bad := refSign(tc.wantHost, "/mqtt", tc.region, creds.AccessKeyID, creds.SecretAccessKey, p, tc.now); bad.signature == sig {
					t.Errorf("signature equals the one with the token signed")
				}
			}
			q := u.Query()
			if q.Get("X-Amz-SignedHeaders") != "host" {
				t.Errorf("X-Amz-SignedHeaders = %q, want host", q.Get("X-Amz-SignedHeaders"))
			}
			if q.Has("X-Amz-Expires") {
				t.Errorf("unexpected X-Amz-Expires")
			}
			if len(q["X-Amz-Signature"]) != 1 || len(q["X-Amz-Date"]) != 1 {
				t.Errorf("duplicated parameters: %v", q)
			}
		})
	}
}

func TestPresignRejectsBadInput(t *testing.T) {
	ok := "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"
	tests := []struct {
		name, url, region string
		creds             Credentials
		now               time.Time
		wantMsg           string
	}{
		{"empty url", "", "eu-west-1", testCreds, testTime, "URL is empty"},
		{"ws scheme", "ws://abc/mqtt", "eu-west-1", testCreds, testTime, "scheme must be wss"},
		{"https scheme", "https://abc/mqtt", "eu-west-1", testCreds, testTime, "scheme must be wss"},
		{"no scheme", "abc-ats.iot.eu-west-1.amazonaws.com/mqtt", "eu-west-1", testCreds, testTime, "scheme must be wss"},
		{"empty host", "wss:///mqtt", "eu-west-1", testCreds, testTime, "host is empty"},
		{"port only", "wss://:443/mqtt", "eu-west-1", testCreds, testTime, "host is empty"},
		{"empty path", "wss://abc", "eu-west-1", testCreds, testTime, "path is empty"},
		{"root path", "wss://abc/", "eu-west-1", testCreds, testTime, "path is empty"},
		{"bad port", "wss://abc:99999/mqtt", "eu-west-1", testCreds, testTime, "bad port"},
		{"userinfo", "wss://u:p@abc/mqtt", "eu-west-1", testCreds, testTime, "user information"},
		{"fragment", "wss://abc/mqtt#x", "eu-west-1", testCreds, testTime, "fragment"},
		{"already signed", ok + "?X-Amz-Signature=00", "eu-west-1", testCreds, testTime, "already carries"},
		{"token in url", ok + "?x-amz-security-token=00", "eu-west-1", testCreds, testTime, "already carries"},
		{"empty region", ok, "", testCreds, testTime, "region is empty"},
		{"bad region", ok, "Europe", testCreds, testTime, "not an AWS region"},
		{"no key id", ok, "eu-west-1", Credentials{SecretAccessKey: "SECRETkey123"}, testTime, "access key id set: false"},
		{"no secret", ok, "eu-west-1", Credentials{AccessKeyID: "a", SessionToken: "t"}, testTime, "secret access key set: false"},
		{"zero time", ok, "eu-west-1", testCreds, time.Time{}, "time is zero"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PresignIoT(tc.url, tc.region, tc.creds, tc.now)
			if err == nil {
				t.Fatalf("got %s, want error", got)
			}
			if !errors.Is(err, ErrInvalidInput) {
				t.Errorf("error %v does not wrap ErrInvalidInput", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
			if tc.creds.SecretAccessKey != "" && strings.Contains(err.Error(), tc.creds.SecretAccessKey) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func FuzzPresignIoT(f *testing.F) {
	for _, s := range []string{
		"wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt", "wss://127.0.0.1:8443/mqtt", "wss://[::1]:443/mqtt",
		"wss://h/mqtt?a=b&c", "wss://h/m%2Fq", "ws://h/mqtt", "wss://h", "wss://h/mqtt#f", "wss://h/%zz",
	} {
		f.Add(s, "")
		f.Add(s, "tok+/=")
	}
	f.Fuzz(func(t *testing.T, raw, token string) {
		creds := testCreds
		creds.SessionToken = token
		got, err := PresignIoT(raw, "eu-west-1", creds, testTime)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("PresignIoT(%q) = %q, which does not parse: %v", raw, got, err)
		}
		if u.Scheme != "wss" || u.Hostname() == "" {
			t.Fatalf("PresignIoT(%q) = %q: bad scheme or host", raw, got)
		}
		signed, tail, ok := strings.Cut(u.RawQuery, "&X-Amz-Signature=")
		if !ok || strings.Contains(signed, "Security-Token") {
			t.Fatalf("PresignIoT(%q) = %q: signature missing or token signed", raw, got)
		}
		sig, rest, _ := strings.Cut(tail, "&")
		if len(sig) != 64 {
			t.Fatalf("signature %q is not 64 hex digits", sig)
		}
		if (token == "") != (rest == "") {
			t.Fatalf("token %q, tail after signature %q", token, rest)
		}
		if token != "" && u.Query().Get("X-Amz-Security-Token") != token {
			t.Fatalf("token %q decodes as %q", token, u.Query().Get("X-Amz-Security-Token"))
		}
	})
}

func BenchmarkPresignIoT(b *testing.B) {
	creds := testCreds
	creds.SessionToken = testToken
	for b.Loop() {
		if _, err := PresignIoT("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt", "eu-west-1", creds, testTime); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPresignUsesCurrentSecret: the SDK signer caches derived keys by access
// key id (not secret); PresignIoT must still sign with the secret it is given.
func TestPresignUsesCurrentSecret(t *testing.T) {
	const u = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"
	a, err := PresignIoT(u, "eu-west-1", testCreds, testTime)
	if err != nil {
		t.Fatal(err)
	}
	other := testCreds
	other.SecretAccessKey = "another/secret+key"
	b, err := PresignIoT(u, "eu-west-1", other, testTime)
	if err != nil {
		t.Fatal(err)
	}
	ref := refSign("abc-ats.iot.eu-west-1.amazonaws.com", "/mqtt", "eu-west-1", other.AccessKeyID, other.SecretAccessKey, nil, testTime)
	if a == b || !strings.HasSuffix(b, "&X-Amz-Signature="+ref.signature) {
		t.Fatalf("signature after a secret change:\n got %s\nwant signature %s", b, ref.signature)
	}
}
