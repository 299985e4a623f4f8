package awsiot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
	"github.com/aws/smithy-go"
)

// aws-sdk-go-v2's Cognito Identity client is the oracle for ours (a test-only
// dependency): the same calls must put the same requests on the wire, and the
// same recorded answers must give the same values, error codes and retries.

const (
	oraclePool = "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"
	oracleID   = "eu-west-1:11111111-2222-4333-8444-555555555555"
)

// recorded is one request as the server saw it.
type recorded struct {
	Method, Path, Target, ContentType, Authorization string
	Body                                             any // decoded JSON
}

// answer is a canned HTTP answer.
type answer struct {
	status int
	header map[string]string
	body   string
	hangUp bool // close the connection without an answer
}

// recorder serves ans to every request and records them.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	ans answer
	got []recorded
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		var body any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("request body is not JSON: %q", raw)
		}
		r.mu.Lock()
		r.got = append(r.got, recorded{req.Method, req.URL.Path, req.Header.Get("X-Amz-Target"),
			req.Header.Get("Content-Type"), req.Header.Get("Authorization"), body})
		a := r.ans
		r.mu.Unlock()
		if a.hangUp {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) serve(a answer) {
	r.mu.Lock()
	r.ans, r.got = a, nil
	r.mu.Unlock()
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// sdkClient is the SDK's client as awsiot built it before it had its own:
// anonymous credentials, 3 attempts; no backoff here, so tests are quick.
func sdkClient(t *testing.T, endpoint string) *cognitoidentity.Client {
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return cognitoidentity.New(cognitoidentity.Options{
		Region:       "eu-west-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   hc,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cognitoMaxAttempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		}),
	})
}

func ourClient(t *testing.T, endpoint string) *cognitoClient {
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	c := newCognitoClient("eu-west-1", endpoint, hc)
	c.backoff = func(int) time.Duration { return 0 }
	return c
}

func TestCognitoRequestsMatchSDK(t *testing.T) {
	rec := newRecorder(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ok := answer{status: 200, header: map[string]string{"Content-Type": cognitoContentType}, body: `{"IdentityId":"` + oracleID + `"}`}
	logins := map[string]string{"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC": "eyJ.a+b/c=.sig"}

	for _, base := range []string{rec.srv.URL, rec.srv.URL + "/", rec.srv.URL + "/prefix", rec.srv.URL + "/prefix/"} {
		sdk, ours := sdkClient(t, base), ourClient(t, base)
		calls := []struct {
			name     string
			sdk, our func() error
		}{
			{"GetId guest",
				func() error {
					_, err := sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(oraclePool)})
					return err
				},
				func() error { _, err := ours.GetId(ctx, oraclePool, nil); return err }},
			{"GetId login",
				func() error {
					_, err := sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(oraclePool), Logins: logins})
					return err
				},
				func() error { _, err := ours.GetId(ctx, oraclePool, logins); return err }},
			{"GetCredentialsForIdentity guest",
				func() error {
					_, err := sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(oracleID)})
					return err
				},
				func() error { _, err := ours.GetCredentialsForIdentity(ctx, oracleID, nil); return err }},
			{"GetCredentialsForIdentity login",
				func() error {
					_, err := sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(oracleID), Logins: logins})
					return err
				},
				func() error { _, err := ours.GetCredentialsForIdentity(ctx, oracleID, logins); return err }},
		}
		for _, c := range calls {
			rec.serve(ok)
			if err := c.sdk(); err != nil {
				t.Fatalf("%s via %s: SDK: %v", c.name, base, err)
			}
			if err := c.our(); err != nil {
				t.Fatalf("%s via %s: ours: %v", c.name, base, err)
			}
			got := rec.requests()
			if len(got) != 2 {
				t.Fatalf("%s via %s: %d requests, want 2", c.name, base, len(got))
			}
			want, have := got[0], got[1]
			if !reflect.DeepEqual(want, have) {
				t.Errorf("%s via %s:\n SDK  sent %+v\n ours sent %+v", c.name, base, want, have)
			}
			if have.Authorization != "" || !strings.HasPrefix(have.Target, cognitoTarget) {
				t.Errorf("%s: Authorization %q, X-Amz-Target %q", c.name, have.Authorization, have.Target)
			}
		}
	}
}

// oracleResult reduces either client's result to the same terms.
type oracleResult struct {
	ID       string
	Creds    cognitoCredentials
	APIError bool // an error answer (smithy.APIError / *APIError)
	Code     string
	Message  string
	Status   int // of an error; 0 when no HTTP status is known
	Failed   bool
	Requests int
}

func sdkOutcome(err error) oracleResult {
	var r oracleResult
	if err == nil {
		return r
	}
	r.Failed = true
	var ae smithy.APIError
	if errors.As(err, &ae) {
		r.APIError, r.Code, r.Message = true, ae.ErrorCode(), ae.ErrorMessage()
		if r.Message == "UnknownError" { // the SDK's placeholder when an unmodelled error has no message
			r.Message = ""
		}
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) && r.APIError {
		r.Status = hs.HTTPStatusCode()
	}
	return r
}

func ourOutcome(err error) oracleResult {
	var r oracleResult
	if err == nil {
		return r
	}
	r.Failed = true
	var ae *APIError
	if errors.As(err, &ae) {
		r.APIError, r.Code, r.Message, r.Status = true, ae.Code, ae.Message, ae.Status
	}
	return r
}

func TestCognitoAnswersParsedLikeSDK(t *testing.T) {
	rec := newRecorder(t)
	sdk, ours := sdkClient(t, rec.srv.URL), ourClient(t, rec.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := map[string]string{"Content-Type": cognitoContentType, "X-Amzn-RequestId": "7e1c0c67-0000-4000-8000-000000000001"}
	withType := func(typ string) map[string]string {
		return map[string]string{"Content-Type": cognitoContentType, "X-Amzn-ErrorType": typ}
	}
	creds := func(exp string) string {
		return `{"IdentityId":"` + oracleID + `","Credentials":{"AccessKeyId":"ASIAEXAMPLE","SecretKey":"c2VjcmV0/+=","SessionToken":"IQoJb3JpZ2luX2Vj+/==",` +
			`"Expiration":` + exp + `}}`
	}
	cases := []struct {
		name string
		a    answer
		// wantRequests is how many attempts each client makes (3 = retried).
		wantRequests int
	}{
		{"GetId ok", answer{status: 200, header: js, body: `{"IdentityId":"` + oracleID + `"}`}, 1},
		{"credentials, whole seconds", answer{status: 200, header: js, body: creds("1700000000")}, 1},
		{"credentials, fractional seconds", answer{status: 200, header: js, body: creds("1.7000000001234567E9")}, 1},
		{"credentials, fraction below a millisecond", answer{status: 200, header: js, body: creds("1700000000.9999")}, 1},
		{"credentials without expiration or token", answer{status: 200, header: js,
			body: `{"IdentityId":"` + oracleID + `","Credentials":{"AccessKeyId":"ASIAEXAMPLE","SecretKey":"s"}}`}, 1},
		{"credentials missing", answer{status: 200, header: js, body: `{"IdentityId":"` + oracleID + `"}`}, 1},
		{"expiration not a number", answer{status: 200, header: js, body: creds(`"tomorrow"`)}, 1},
		{"200, body not JSON", answer{status: 200, header: js, body: `<html>`}, 1},
		{"NotAuthorized, header and __type", answer{status: 400, header: withType("NotAuthorizedException:http://internal.amazon.com/coral/com.amazonaws.cognito.identity.model/"),
			body: `{"__type":"NotAuthorizedException","message":"Invalid login token. Token signature invalid."}`}, 1},
		{"ResourceNotFound, namespaced __type only", answer{status: 400, header: js,
			body: `{"__type":"com.amazonaws.cognito.identity.model#ResourceNotFoundException","message":"IdentityPool 'x' not found."}`}, 1},
		{"InvalidIdentityPoolConfiguration, Message", answer{status: 400, header: js,
			body: `{"__type":"InvalidIdentityPoolConfigurationException","Message":"Invalid identity pool configuration. Check assigned IAM roles for this pool."}`}, 1},
		{"InvalidParameter in code", answer{status: 400, header: js, body: `{"code":"InvalidParameterException","message":"1 validation error detected"}`}, 1},
		{"TooManyRequests, header only, empty body", answer{status: 400, header: withType("TooManyRequestsException:")}, 3},
		{"LimitExceeded 400", answer{status: 400, header: js, body: `{"__type":"LimitExceededException","message":"Rate exceeded"}`}, 3},
		{"unmodelled code without message", answer{status: 400, header: js, body: `{"__type":"aws#SomethingNewException"}`}, 1},
		{"InternalError 500", answer{status: 500, header: js, body: `{"__type":"InternalErrorException","message":"An internal error occurred"}`}, 3},
		{"ServiceUnavailable 503 header", answer{status: 503, header: withType("ServiceUnavailableException:"), body: `{"message":"Service is unavailable"}`}, 3},
		{"502 HTML from a proxy", answer{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: `<html><body>Bad Gateway</body></html>`}, 3},
		{"403 HTML from a proxy", answer{status: 403, header: map[string]string{"Content-Type": "text/html"}, body: `<html>Forbidden</html>`}, 1},
		{"429 empty body", answer{status: 429}, 3},
		{"connection closed without an answer", answer{hangUp: true}, 3},
	}
	for _, c := range cases {
		for _, op := range []string{"GetId", "GetCredentialsForIdentity"} {
			name := c.name + " / " + op
			var want, got oracleResult
			rec.serve(c.a)
			if op == "GetId" {
				out, err := sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(oraclePool)})
				want = sdkOutcome(err)
				if err == nil {
					want.ID = aws.ToString(out.IdentityId)
				}
			} else {
				out, err := sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(oracleID)})
				want = sdkOutcome(err)
				if err == nil && out.Credentials != nil {
					cr := out.Credentials
					want.Creds = cognitoCredentials{AccessKeyID: aws.ToString(cr.AccessKeyId), SecretKey: aws.ToString(cr.SecretKey),
						SessionToken: aws.ToString(cr.SessionToken)}
					if cr.Expiration != nil {
						want.Creds.Expiration = *cr.Expiration
					}
				}
			}
			want.Requests = len(rec.requests())

			rec.serve(c.a)
			var err error
			if op == "GetId" {
				var id string
				id, err = ours.GetId(ctx, oraclePool, nil)
				got = ourOutcome(err)
				got.ID = id
			} else {
				var cr cognitoCredentials
				cr, err = ours.GetCredentialsForIdentity(ctx, oracleID, nil)
				got = ourOutcome(err)
				got.Creds = cr
			}
			got.Requests = len(rec.requests())

			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s:\n SDK  %+v\n ours %+v (err %v)", name, want, got, err)
			}
			if got.Requests != c.wantRequests {
				t.Errorf("%s: %d attempts, want %d", name, got.Requests, c.wantRequests)
			}
		}
	}
}

func TestCognitoEndpointMatchesSDK(t *testing.T) {
	resolver := cognitoidentity.NewDefaultEndpointResolverV2()
	for _, region := range []string{"eu-west-1", "us-east-1", "ap-southeast-5", "il-central-1", "mx-central-1", "ca-west-1",
		"us-gov-west-1", "cn-north-1", "cn-northwest-1", "eusc-de-east-1", "us-iso-east-1", "us-isob-east-1", "us-isof-south-1", "eu-isoe-west-1"} {
		ep, err := resolver.ResolveEndpoint(context.Background(), cognitoidentity.EndpointParameters{Region: aws.String(region)})
		if err != nil {
			t.Fatalf("SDK resolver for %s: %v", region, err)
		}
		if got, want := cognitoEndpoint(region), ep.URI.String(); got != want {
			t.Errorf("endpoint for %s = %s, SDK says %s", region, got, want)
		}
	}
}
