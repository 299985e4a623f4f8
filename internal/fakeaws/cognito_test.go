package fakeaws

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// cognitoCall speaks the wire protocol by hand (the SDK client is exercised in
// package awsiot): it returns status, Date and the decoded JSON body.
func cognitoCall(t *testing.T, c *Cognito, target, contentType, body string) (int, time.Time, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	req.Header.Set("Content-Type", contentType)
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Fatalf("answer Content-Type %q", ct)
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		t.Fatalf("answer without a valid Date header: %q", resp.Header.Get("Date"))
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON: %q", raw)
	}
	return resp.StatusCode, date, out
}

const jsonCT = "application/x-amz-json-1.1"

func TestCognitoFakeProtocol(t *testing.T) {
	c := NewCognito(t)
	c.SetCredentialLifetime(90 * time.Second)
	var (
		mu     sync.Mutex
		hooked []string
	)
	c.OnIssue(func(akid, secret, token string, expires time.Time) {
		if secret == "" || token == "" || expires.IsZero() {
			t.Errorf("OnIssue got incomplete credentials")
		}
		mu.Lock()
		hooked = append(hooked, akid)
		mu.Unlock()
	})

	status, _, out := cognitoCall(t, c, "", jsonCT, "{}")
	if status != 400 || out["__type"] != "UnknownOperationException" {
		t.Fatalf("no target: %d %v", status, out)
	}
	status, _, out = cognitoCall(t, c, CognitoTarget+"GetId", "application/json", `{"IdentityPoolId":"`+c.PoolID()+`"}`)
	if status != 400 || out["__type"] != "SerializationException" {
		t.Fatalf("wrong content type: %d %v", status, out)
	}
	status, _, out = cognitoCall(t, c, CognitoTarget+"GetId", jsonCT, `{"IdentityPoolId":"eu-west-1:00000000-0000-4000-8000-000000000000"}`)
	if status != 400 || out["__type"] != "ResourceNotFoundException" || !strings.Contains(out["message"].(string), "not found") {
		t.Fatalf("unknown pool: %d %v", status, out)
	}

	status, _, out = cognitoCall(t, c, CognitoTarget+"GetId", jsonCT, `{"IdentityPoolId":"`+c.PoolID()+`"}`)
	id, _ := out["IdentityId"].(string)
	if status != 200 || !strings.HasPrefix(id, c.Region()+":") || len(id) != len(c.Region())+1+36 {
		t.Fatalf("GetId: %d %v", status, out)
	}

	c.SetClockOffset(time.Hour)
	status, date, out := cognitoCall(t, c, CognitoTarget+"GetCredentialsForIdentity", jsonCT, `{"IdentityId":"`+id+`"}`)
	if status != 200 {
		t.Fatalf("GetCredentialsForIdentity: %d %v", status, out)
	}
	if d := date.Sub(time.Now().Add(time.Hour)); d.Abs() > 3*time.Second {
		t.Fatalf("Date is %v off the fake's clock (now+1h)", d)
	}
	creds := out["Credentials"].(map[string]any)
	exp, ok := creds["Expiration"].(float64)
	if !ok {
		t.Fatalf("Expiration is not a JSON number: %#v", creds["Expiration"])
	}
	issued := c.Issued()
	mu.Lock()
	hookedNow := append([]string(nil), hooked...)
	mu.Unlock()
	if len(issued) != 1 || issued[0].AccessKeyID != creds["AccessKeyId"] || issued[0].IdentityID != id ||
		int64(exp) != issued[0].Expires.Unix() || len(hookedNow) != 1 || hookedNow[0] != issued[0].AccessKeyID {
		t.Fatalf("issued %+v, answer %v, hooked %v", issued, creds, hookedNow)
	}
	if d := issued[0].Expires.Sub(date); d < 89*time.Second || d > 91*time.Second {
		t.Fatalf("lifetime %v, want 90s on the fake's clock", d)
	}
	if !strings.ContainsAny(issued[0].SessionToken, "+/") || !strings.HasPrefix(issued[0].AccessKeyID, "ASIA") {
		t.Fatalf("credentials do not look like Cognito's: %+v", issued[0])
	}

	c.DeleteIdentity(id)
	status, _, out = cognitoCall(t, c, CognitoTarget+"GetCredentialsForIdentity", jsonCT, `{"IdentityId":"`+id+`"}`)
	if status != 400 || out["__type"] != "ResourceNotFoundException" {
		t.Fatalf("deleted identity: %d %v", status, out)
	}

	c.SetUnavailable(true)
	s1, _, o1 := cognitoCall(t, c, CognitoTarget+"GetId", jsonCT, `{"IdentityPoolId":"`+c.PoolID()+`"}`)
	s2, _, o2 := cognitoCall(t, c, CognitoTarget+"GetId", jsonCT, `{"IdentityPoolId":"`+c.PoolID()+`"}`)
	if s1 != 503 || o1["__type"] != "ServiceUnavailableException" || s2 != 500 || o2["__type"] != "InternalErrorException" {
		t.Fatalf("unavailable: %d %v, %d %v", s1, o1, s2, o2)
	}
	c.SetUnavailable(false)
	if n, m := c.GetIdCalls(), c.GetCredentialsCalls(); n != 5 || m != 2 {
		t.Fatalf("counters GetId=%d GetCredentialsForIdentity=%d, want 5 and 2", n, m)
	}
}

func TestCognitoFakeLogins(t *testing.T) {
	c := NewCognito(t)
	const prov, tok = "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf", "eyJ.secret-one.sig"
	getID := func(logins string) (int, map[string]any) {
		s, _, out := cognitoCall(t, c, CognitoTarget+"GetId", jsonCT, `{"IdentityPoolId":"`+c.PoolID()+`"`+logins+`}`)
		return s, out
	}
	creds := func(id, logins string) (int, map[string]any) {
		s, _, out := cognitoCall(t, c, CognitoTarget+"GetCredentialsForIdentity", jsonCT, `{"IdentityId":"`+id+`"`+logins+`}`)
		return s, out
	}
	notAuth := func(what string, s int, out map[string]any, msg string) {
		t.Helper()
		m, _ := out["message"].(string)
		if s != 400 || out["__type"] != "NotAuthorizedException" || !strings.Contains(m, msg) || strings.Contains(m, "secret") {
			t.Fatalf("%s: %d %v, want NotAuthorizedException %q without the token", what, s, out, msg)
		}
	}
	withLogin := func(p, tk string) string { return `,"Logins":{"` + p + `":"` + tk + `"}` }

	// By default no provider is configured: any Logins is refused, guests are fine.
	s, out := getID(withLogin(prov, tok))
	notAuth("login before RequireLogin", s, out, "not from a supported provider")
	s, out = getID("")
	guest, _ := out["IdentityId"].(string)
	if s != 200 || guest == "" || c.Authenticated(guest) {
		t.Fatalf("guest GetId: %d %v", s, out)
	}

	c.RequireLogin(prov, tok)
	s, out = getID("")
	notAuth("GetId without Logins", s, out, "Unauthenticated access is not supported")
	s, out = getID(withLogin(prov, "eyJ.secret-wrong.sig"))
	notAuth("GetId with a wrong token", s, out, "Invalid login token")
	s, out = getID(withLogin("accounts.google.com", tok))
	notAuth("GetId with another provider", s, out, "not from a supported provider")
	s, out = getID(withLogin(prov, tok))
	id, _ := out["IdentityId"].(string)
	if s != 200 || id == "" || id == guest || !c.Authenticated(id) {
		t.Fatalf("authenticated GetId: %d %v", s, out)
	}
	if s, out = getID(withLogin(prov, tok)); out["IdentityId"] != id {
		t.Fatalf("the same login got another identity: %d %v, want %s", s, out, id)
	}
	s, out = creds(id, "")
	notAuth("credentials without Logins", s, out, "is forbidden")
	s, out = creds(id, withLogin(prov, "eyJ.secret-wrong.sig"))
	notAuth("credentials with a wrong token", s, out, "Invalid login token")
	if s, out = creds(id, withLogin(prov, tok)); s != 200 || out["Credentials"] == nil {
		t.Fatalf("authenticated credentials: %d %v", s, out)
	}
	// Rotation: the old token is refused, the new one works for the same identity.
	c.RequireLogin(prov, "eyJ.secret-two.sig")
	s, out = creds(id, withLogin(prov, tok))
	notAuth("credentials with the rotated-out token", s, out, "Invalid login token")
	if s, out = creds(id, withLogin(prov, "eyJ.secret-two.sig")); s != 200 {
		t.Fatalf("credentials with the new token: %d %v", s, out)
	}
	if s, out = getID(withLogin(prov, "eyJ.secret-two.sig")); out["IdentityId"] != id {
		t.Fatalf("after rotation the login got another identity: %d %v", s, out)
	}

	calls := c.Logins()
	if len(calls) != 13 {
		t.Fatalf("recorded %d calls, want 13: %+v", len(calls), calls)
	}
	if calls[1].Op != "GetId" || calls[1].Logins != nil {
		t.Fatalf("guest GetId recorded as %+v", calls[1])
	}
	last := calls[len(calls)-1]
	if last.Op != "GetId" || last.Logins[prov] != "eyJ.secret-two.sig" || len(last.Logins) != 1 {
		t.Fatalf("last call recorded as %+v", last)
	}
	if cr := calls[len(calls)-2]; cr.Op != "GetCredentialsForIdentity" || cr.IdentityID != id || cr.Logins[prov] != "eyJ.secret-two.sig" {
		t.Fatalf("credentials call recorded as %+v", cr)
	}
	calls[len(calls)-1].Logins[prov] = "changed"
	if c.Logins()[len(calls)-1].Logins[prov] != "eyJ.secret-two.sig" {
		t.Fatal("Logins returned the fake's own map, not a copy")
	}

	// Back to guest access: Logins are refused again, guests work.
	c.RequireLogin("", "")
	s, out = getID(withLogin(prov, "eyJ.secret-two.sig"))
	notAuth("login after RequireLogin(\"\")", s, out, "not from a supported provider")
	if s, _ = getID(""); s != 200 {
		t.Fatalf("guest GetId after RequireLogin(\"\"): %d", s)
	}
}
