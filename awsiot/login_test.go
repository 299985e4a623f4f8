package awsiot

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

const testLoginProvider = "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"

// Tokens that look like JWTs and are easy to spot in logs and errors.
const (
	tokenOne   = "eyJraWQiOiJ0ZXN0In0.TOKEN-ONE-SECRET.c2lnbmF0dXJl"
	tokenTwo   = "eyJraWQiOiJ0ZXN0In0.TOKEN-TWO-SECRET.c2lnbmF0dXJl"
	tokenWrong = "eyJraWQiOiJ0ZXN0In0.TOKEN-WRONG-SECRET.c2lnbmF0dXJl"
)

// writeToken replaces the token file atomically, as a token refresher should.
func writeToken(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func withLogin(file string) provOpt {
	return func(o *Options) { o.LoginProvider, o.LoginTokenFile = testLoginProvider, file }
}

// assertNoSecret fails if any of the tokens appears in any of the texts.
func assertNoSecret(t *testing.T, where string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, tok := range []string{tokenOne, tokenTwo, tokenWrong, "SECRET"} {
			if strings.Contains(text, tok) {
				t.Fatalf("%s holds the login token %q:\n%s", where, tok, text)
			}
		}
	}
}

// With a login, GetId and GetCredentialsForIdentity carry {provider: token}
// read from the file (trimmed); a token rotated in the file is used by the
// next credentials refresh; the token never reaches the log.
func TestLoginsSentAndTokenRotationPickedUp(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.RequireLogin(testLoginProvider, tokenOne)
	tokFile := filepath.Join(t.TempDir(), "id-token")
	writeToken(t, tokFile, "  "+tokenOne+"\r\n")
	clk := &testClock{}
	p, logs := newCognitoProvider(t, cog, t.TempDir(), withLogin(tokFile), func(o *Options) { o.Now = clk.Now })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if st := p.Status(); !st.Authenticated {
		t.Fatalf("Status().Authenticated = false for a provider with a login")
	}
	u1, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint: %v", err)
	}
	id, _ := p.IdentityID(ctx)
	if !cog.Authenticated(id) {
		t.Fatalf("identity %s is not an authenticated one in the fake", id)
	}
	want1 := map[string]string{testLoginProvider: tokenOne}
	calls := cog.Logins()
	if len(calls) != 2 || calls[0].Op != "GetId" || calls[1].Op != "GetCredentialsForIdentity" || calls[1].IdentityID != id {
		t.Fatalf("Cognito calls %+v, want GetId then GetCredentialsForIdentity for %s", calls, id)
	}
	for _, c := range calls {
		if !maps.Equal(c.Logins, want1) {
			t.Fatalf("%s carried Logins %v, want %v (trimmed token from the file)", c.Op, c.Logins, want1)
		}
	}
	if n := cog.SignedCalls(); n != 0 {
		t.Fatalf("%d Cognito calls were signed; with Logins they are still anonymous calls", n)
	}
	if got, want := parseSigned(t, u1).AccessKeyID, cog.Issued()[0].AccessKeyID; got != want {
		t.Fatalf("signed with %q, want %q", got, want)
	}

	// The refresher rotates the token; Cognito accepts only the new one from now on.
	writeToken(t, tokFile, tokenTwo+"\n")
	cog.RequireLogin(testLoginProvider, tokenTwo)
	if _, _, err := p.Endpoint(ctx); err != nil { // cached credentials: no Cognito call yet
		t.Fatal(err)
	}
	if n := len(cog.Logins()); n != 2 {
		t.Fatalf("%d Cognito calls before the refresh was due, want 2", n)
	}
	clk.Advance(58 * time.Minute)
	cog.SetClockOffset(58 * time.Minute)
	u2, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint after rotating the token: %v", err)
	}
	calls = cog.Logins()
	last := calls[len(calls)-1]
	if len(calls) != 3 || last.Op != "GetCredentialsForIdentity" || last.IdentityID != id ||
		!maps.Equal(last.Logins, map[string]string{testLoginProvider: tokenTwo}) {
		t.Fatalf("refresh carried %+v (calls %d), want the rotated token for %s and no second GetId", last, len(calls), id)
	}
	issued := cog.Issued()
	if got := parseSigned(t, u2).AccessKeyID; len(issued) != 2 || got != issued[1].AccessKeyID {
		t.Fatalf("signed with %q after the refresh; issued %+v", got, issued)
	}
	if cog.GetIdCalls() != 1 {
		t.Fatalf("GetId calls = %d, want 1: the identity id is kept", cog.GetIdCalls())
	}
	if !strings.Contains(logs.String(), "got AWS credentials from Cognito") {
		t.Fatalf("the log captured nothing, so the secret check below would prove nothing:\n%s", logs)
	}
	assertNoSecret(t, "the log", logs.String())
}

// A token Cognito refuses gives an error that names the provider and the file
// and says what to check, but never holds the token; nor does Status or the
// log, also when Run keeps retrying.
func TestWrongLoginTokenIsAClearErrorWithoutTheToken(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.RequireLogin(testLoginProvider, tokenOne)
	tokFile := filepath.Join(t.TempDir(), "id-token")
	writeToken(t, tokFile, tokenWrong+"\n")
	p, logs := newCognitoProvider(t, cog, t.TempDir(), withLogin(tokFile))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, _, err := p.Endpoint(ctx)
	if err == nil {
		t.Fatal("Endpoint accepted a wrong login token")
	}
	for _, want := range []string{"GetId", testLoginProvider, tokFile, "cognito.login_token_file", "expired", "NotAuthorizedException"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	assertNoSecret(t, "the error", err.Error())
	t.Logf("error for a wrong token: %v", err)
	if calls := cog.Logins(); len(calls) != 1 || calls[0].Logins[testLoginProvider] != tokenWrong {
		t.Fatalf("Cognito got %+v, want the token read from the file", calls)
	}

	// Run retries with backoff and logs each failure: still no token anywhere.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	testutil.WaitFor(t, 10*time.Second, "Run's retry to be logged", func() bool {
		return strings.Contains(logs.String(), "refreshing AWS credentials from Cognito failed")
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := p.Status()
	if !strings.Contains(st.LastError, tokFile) || !st.Authenticated {
		t.Fatalf("Status = %+v, want the login error and Authenticated", st)
	}
	assertNoSecret(t, "Status().LastError", st.LastError)
	assertNoSecret(t, "the log", logs.String())
	if cog.GetIdCalls() < 2 {
		t.Fatalf("GetId calls = %d, want Run's retry too", cog.GetIdCalls())
	}

	// The right token fixes it without a restart.
	writeToken(t, tokFile, tokenOne)
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatalf("Endpoint after fixing the token: %v", err)
	}
	assertNoSecret(t, "the log", logs.String())
}

// A credentials refresh for an identity created earlier fails clearly when
// the token has expired (Cognito now refuses it), naming the identity.
func TestExpiredLoginTokenOnRefresh(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.RequireLogin(testLoginProvider, tokenOne)
	tokFile := filepath.Join(t.TempDir(), "id-token")
	writeToken(t, tokFile, tokenOne)
	clk := &testClock{}
	p, logs := newCognitoProvider(t, cog, t.TempDir(), withLogin(tokFile), func(o *Options) { o.Now = clk.Now })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := p.IdentityID(ctx)
	cog.RequireLogin(testLoginProvider, tokenTwo) // the provider moved on; the file was not renewed
	clk.Advance(time.Hour)
	cog.SetClockOffset(time.Hour)
	_, _, err := p.Endpoint(ctx)
	if err == nil || !strings.Contains(err.Error(), "GetCredentialsForIdentity") || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), tokFile) {
		t.Fatalf("refresh with an outdated token: %v", err)
	}
	assertNoSecret(t, "the error", err.Error())
	assertNoSecret(t, "the log", logs.String())
}

// Problems with the token file are found before Cognito is called and named
// with the file, never with its content.
func TestLoginTokenFileProblems(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content *string // nil: no file
		want    string
	}{
		{"missing", nil, "no such file"},
		{"empty", ptr(" \n\t\n"), "is empty"},
		{"two tokens", ptr(tokenOne + "\n" + tokenTwo + "\n"), "does not hold a single token"},
		{"too large", ptr(strings.Repeat("x", maxLoginToken+1)), "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cog := fakeaws.NewCognito(t)
			cog.RequireLogin(testLoginProvider, tokenOne)
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.content != nil {
				writeToken(t, file, *tc.content)
			}
			p, logs := newCognitoProvider(t, cog, t.TempDir(), withLogin(file))
			_, err := p.IdentityID(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "login") {
				t.Fatalf("err = %v, want one containing %q and naming %s", err, tc.want, file)
			}
			if errors.Is(err, os.ErrNotExist) != (tc.content == nil) {
				t.Errorf("errors.Is(err, os.ErrNotExist) wrong for %v", err)
			}
			assertNoSecret(t, "the error", err.Error())
			assertNoSecret(t, "the log", logs.String())
			if n := len(cog.Logins()); n != 0 {
				t.Fatalf("Cognito was called %d times with an unusable token file", n)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestNewValidatesLogin(t *testing.T) {
	pool := "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"provider without file", Options{URL: testIoTURL, IdentityPoolID: pool, StateDir: "/x", LoginProvider: testLoginProvider},
			"login_provider is set without cognito.login_token_file"},
		{"file without provider", Options{URL: testIoTURL, IdentityPoolID: pool, StateDir: "/x", LoginTokenFile: "/t"},
			"login_token_file is set without cognito.login_provider"},
		{"login without pool", Options{URL: testIoTURL, LoginProvider: testLoginProvider, LoginTokenFile: "/t"}, "need cognito.identity_pool_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	p, err := New(Options{URL: testIoTURL, IdentityPoolID: pool, StateDir: "/x"})
	if err != nil || p.Status().Authenticated {
		t.Fatalf("guest provider: %v, Authenticated %v", err, p.Status().Authenticated)
	}
}
