package awsiot

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

func TestIdentityCreatedOnceAndReusedAfterRestart(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	p1, logs := newCognitoProvider(t, cog, dir)
	// Many concurrent first callers share one GetId.
	const callers = 16
	ids := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = p1.IdentityID(ctx)
		}()
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("IdentityID caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("callers got different ids: %q vs %q", ids[i], ids[0])
		}
	}
	id := ids[0]
	if !ValidIdentityID(id) || !strings.HasPrefix(id, cog.Region()+":") {
		t.Fatalf("identity id %q is not <%s>:<uuid>", id, cog.Region())
	}
	if n := cog.GetIdCalls(); n != 1 {
		t.Fatalf("GetId calls = %d, want exactly 1 for %d concurrent callers", n, callers)
	}
	if n := cog.SignedCalls(); n != 0 {
		t.Fatalf("%d Cognito calls were signed; GetId/GetCredentialsForIdentity must be anonymous", n)
	}
	if !strings.Contains(logs.String(), "aws iot attach-policy --policy-name <your-policy> --target "+id) {
		t.Fatalf("creating the identity did not log the attach-policy hint; log:\n%s", logs)
	}

	path := filepath.Join(dir, IdentityFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("identity not persisted: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode = %v, want 0600", path, fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.TrimSpace(string(data)) != id {
		t.Fatalf("%s holds %q, want %q", path, data, id)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("state dir has %d entries (temp files left behind?): %v", len(entries), entries)
	}

	u1, _, err := p1.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint: %v", err)
	}
	if got, want := parseSigned(t, u1).AccessKeyID, cog.Issued()[0].AccessKeyID; got != want {
		t.Fatalf("signed with %q, want the issued %q", got, want)
	}

	// "Restart": a new Provider on the same state dir.
	p2, _ := newCognitoProvider(t, cog, dir)
	if st := p2.Status(); st.IdentityID != "" {
		t.Fatalf("a fresh provider reports identity %q before reading it", st.IdentityID)
	}
	u2, _, err := p2.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint after restart: %v", err)
	}
	if got, _ := p2.IdentityID(ctx); got != id {
		t.Fatalf("identity after restart = %q, want %q", got, id)
	}
	if n := cog.GetIdCalls(); n != 1 {
		t.Fatalf("GetId calls after restart = %d, want still 1", n)
	}
	issued := cog.Issued()
	if len(issued) != 2 || issued[1].IdentityID != id {
		t.Fatalf("issued after restart = %+v, want a second set for %s", issued, id)
	}
	if got := parseSigned(t, u2).AccessKeyID; got != issued[1].AccessKeyID {
		t.Fatalf("restarted provider signed with %q, want %q", got, issued[1].AccessKeyID)
	}
	if st := p2.Status(); st.IdentityID != id || st.CredentialSource != "cognito" || !st.CredentialsExpire.Equal(issued[1].Expires) {
		t.Fatalf("Status after restart = %+v, want identity %s, source cognito, expiry %v", st, id, issued[1].Expires)
	}
}

func TestIdentityFileCorruptIsAnErrorNotANewIdentity(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	dir := t.TempDir()
	path := filepath.Join(dir, IdentityFileName)
	if err := os.WriteFile(path, []byte("not-an-identity\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := newCognitoProvider(t, cog, dir)
	_, err := p.IdentityID(context.Background())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("IdentityID with a corrupt file: err = %v, want one naming %s and the way out", err, path)
	}
	if n := cog.GetIdCalls(); n != 0 {
		t.Fatalf("GetId called %d times although a (corrupt) identity file exists", n)
	}
	if data, _ := os.ReadFile(path); string(data) != "not-an-identity\n" {
		t.Fatalf("the corrupt file was changed to %q", data)
	}
}

func TestIdentityDeletedInCognitoIsNotSilentlyReplaced(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p1, _ := newCognitoProvider(t, cog, dir)
	id, err := p1.IdentityID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cog.DeleteIdentity(id)

	p2, logs := newCognitoProvider(t, cog, dir)
	_, _, err = p2.Endpoint(ctx)
	if !errors.Is(err, ErrIdentityNotFound) {
		t.Fatalf("Endpoint for a deleted identity: err = %v, want ErrIdentityNotFound", err)
	}
	for _, want := range []string{id, filepath.Join(dir, IdentityFileName), "does not create a new identity"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if !strings.Contains(logs.String(), "COGNITO IDENTITY NOT FOUND") {
		t.Errorf("not logged loudly; log:\n%s", logs)
	}
	if n := cog.GetIdCalls(); n != 1 {
		t.Fatalf("GetId calls = %d: a new identity was created silently", n)
	}
	if st := p2.Status(); !strings.Contains(st.LastError, "not found") {
		t.Fatalf("Status().LastError = %q, want the not-found error", st.LastError)
	}
}

func TestUnknownPoolSaysWhatToFix(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) {
		o.IdentityPoolID = "eu-west-1:00000000-0000-4000-8000-000000000000"
	})
	_, err := p.IdentityID(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cognito.identity_pool_id") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("GetId for an unknown pool: %v", err)
	}
}

// Run refreshes short-lived credentials before they expire, and Endpoint then
// signs with the new access key id.
func TestRunRefreshesBeforeExpiry(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.SetCredentialLifetime(3 * time.Second)
	type issue struct {
		akid    string
		at      time.Time
		expires time.Time
	}
	var mu sync.Mutex
	var issues []issue
	cog.OnIssue(func(akid, _, _ string, expires time.Time) {
		mu.Lock()
		issues = append(issues, issue{akid, cog.Now(), expires})
		mu.Unlock()
	})
	p, _ := newCognitoProvider(t, cog, t.TempDir())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	}()

	testutil.WaitFor(t, 15*time.Second, "three credential sets", func() bool { return len(cog.Issued()) >= 3 })
	mu.Lock()
	got := append([]issue(nil), issues...)
	mu.Unlock()
	for i := 1; i < len(got); i++ {
		if !got[i].at.Before(got[i-1].expires) {
			t.Fatalf("set %d was fetched at %v, not before set %d expired at %v", i, got[i].at, i-1, got[i-1].expires)
		}
		if got[i].akid == got[i-1].akid {
			t.Fatalf("set %d has the same access key id as set %d", i, i-1)
		}
	}

	u, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint: %v", err)
	}
	sp := parseSigned(t, u)
	latest := cog.Issued()
	var known bool
	for _, ic := range latest[2:] {
		if ic.AccessKeyID == sp.AccessKeyID && ic.SessionToken == sp.Token {
			known = true
		}
	}
	if !known {
		t.Fatalf("Endpoint signed with %q, not with a refreshed set (issued: %d sets)", sp.AccessKeyID, len(latest))
	}
	if sp.Region != "eu-west-1" || sp.Service != "iotdevicegateway" {
		t.Fatalf("scope region/service = %s/%s", sp.Region, sp.Service)
	}
	if err := p.Run(ctx); err == nil {
		t.Fatal("a second concurrent Run was accepted")
	}
}

// Endpoint refreshes lazily (no Run) once credentials are due; the clock is
// injected and moved together with the fake's clock.
func TestEndpointRefreshesLazilyWhenDue(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	clk := &testClock{}
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) { o.Now = clk.Now })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	u1, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u1b, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := cog.GetCredentialsCalls(); n != 1 {
		t.Fatalf("GetCredentialsForIdentity calls = %d after two Endpoint calls, want 1 (cached)", n)
	}
	if parseSigned(t, u1).AccessKeyID != parseSigned(t, u1b).AccessKeyID {
		t.Fatal("cached credentials changed without a refresh")
	}

	// 50 minutes on: not yet due (refresh is 5–7.5 min before the 1 h expiry).
	clk.Advance(50 * time.Minute)
	cog.SetClockOffset(50 * time.Minute)
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if n := cog.GetCredentialsCalls(); n != 1 {
		t.Fatalf("refreshed %d times at 50 min, want not yet", n-1)
	}

	// 58 minutes on: due.
	clk.Advance(8 * time.Minute)
	cog.SetClockOffset(58 * time.Minute)
	u2, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := cog.GetCredentialsCalls(); n != 2 {
		t.Fatalf("GetCredentialsForIdentity calls = %d at 58 min, want 2", n)
	}
	issued := cog.Issued()
	if got := parseSigned(t, u2).AccessKeyID; got != issued[1].AccessKeyID {
		t.Fatalf("signed with %q after refresh, want the new %q", got, issued[1].AccessKeyID)
	}
	if st := p.Status(); !st.CredentialsExpire.Equal(issued[1].Expires) || st.ClockSkew != 0 {
		t.Fatalf("Status = %+v, want expiry %v and no skew", st, issued[1].Expires)
	}
}

func TestCognitoUnavailableThenRecovers(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	clk := &testClock{}
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) { o.Now = clk.Now })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// No credentials yet and Cognito down: a clear error, every time.
	cog.SetUnavailable(true)
	for range 2 {
		_, _, err := p.Endpoint(ctx)
		if err == nil {
			t.Fatal("Endpoint succeeded while Cognito is down and nothing is cached")
		}
		for _, want := range []string{"no valid AWS credentials", "Cognito GetId", "will retry"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error lacks %q: %v", want, err)
			}
		}
	}
	if st := p.Status(); st.LastError == "" {
		t.Fatal("Status().LastError empty while Cognito is down")
	}
	if n := cog.GetIdCalls(); n < 2*cognitoMaxAttempts {
		t.Fatalf("GetId calls = %d, want %d (SDK retries per Endpoint call)", n, 2*cognitoMaxAttempts)
	}

	// Back: the next attempt works.
	cog.SetUnavailable(false)
	u, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint after Cognito came back: %v", err)
	}
	first := cog.Issued()[0]
	if got := parseSigned(t, u).AccessKeyID; got != first.AccessKeyID {
		t.Fatalf("signed with %q, want %q", got, first.AccessKeyID)
	}
	if st := p.Status(); st.LastError != "" {
		t.Fatalf("LastError still %q after recovery", st.LastError)
	}

	// Due for refresh while Cognito is down: the cached, still valid
	// credentials keep being served.
	clk.Advance(58 * time.Minute)
	cog.SetClockOffset(58 * time.Minute)
	cog.SetUnavailable(true)
	u, _, err = p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint with valid cached credentials while Cognito is down: %v", err)
	}
	if got := parseSigned(t, u).AccessKeyID; got != first.AccessKeyID {
		t.Fatalf("signed with %q, want the cached %q", got, first.AccessKeyID)
	}
	if p.Status().LastError == "" {
		t.Fatal("failed refresh not reported in Status().LastError")
	}
	calls := cog.GetCredentialsCalls()
	if _, _, err := p.Endpoint(ctx); err != nil { // inside the backoff window: no new call
		t.Fatal(err)
	}
	if n := cog.GetCredentialsCalls(); n != calls {
		t.Fatalf("Endpoint retried Cognito inside the backoff window (%d → %d calls)", calls, n)
	}

	// Past expiry and still down: an error, not expired credentials.
	clk.Advance(3 * time.Minute)
	cog.SetClockOffset(61 * time.Minute)
	if _, _, err := p.Endpoint(ctx); err == nil || !strings.Contains(err.Error(), "no valid AWS credentials") {
		t.Fatalf("Endpoint with expired credentials and Cognito down: err = %v", err)
	}

	cog.SetUnavailable(false)
	u, _, err = p.Endpoint(ctx)
	if err != nil {
		t.Fatalf("Endpoint after the second recovery: %v", err)
	}
	issued := cog.Issued()
	if got := parseSigned(t, u).AccessKeyID; got != issued[len(issued)-1].AccessKeyID || got == first.AccessKeyID {
		t.Fatalf("signed with %q, want the new %q", got, issued[len(issued)-1].AccessKeyID)
	}
}

// Run backs off while Cognito is down and gets credentials once it is back.
func TestRunRecoversFromCognitoOutage(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.SetUnavailable(true)
	p, logs := newCognitoProvider(t, cog, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	testutil.WaitFor(t, 15*time.Second, "two failed refresh rounds", func() bool {
		return logs.Count("refreshing AWS credentials from Cognito failed") >= 2
	})
	if st := p.Status(); st.LastError == "" || !st.CredentialsExpire.IsZero() {
		t.Fatalf("Status during outage = %+v", st)
	}
	cog.SetUnavailable(false)
	testutil.WaitFor(t, 15*time.Second, "credentials after the outage", func() bool {
		return !p.Status().CredentialsExpire.IsZero()
	})
	if st := p.Status(); st.LastError != "" {
		t.Fatalf("LastError = %q after recovery", st.LastError)
	}
}

func TestClockSkewLearnedFromCognitoDate(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	cog.SetClockOffset(time.Hour) // AWS is an hour ahead of this device
	p, logs := newCognitoProvider(t, cog, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	u, _, err := p.Endpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	skew := p.Status().ClockSkew
	if (skew - time.Hour).Abs() > 2*time.Second {
		t.Fatalf("ClockSkew = %v, want about 1h", skew)
	}
	signedAt := parseSigned(t, u).SignedAt
	if d := signedAt.Sub(time.Now().Add(time.Hour)); d.Abs() > 5*time.Second {
		t.Fatalf("X-Amz-Date %v is %v away from AWS time; want signing at local time + 1h", signedAt, d)
	}
	// More responses with the same skew: logged once only.
	id, err := p.IdentityID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := p.getCredentials(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := cog.GetCredentialsCalls(); n != 3 {
		t.Fatalf("GetCredentialsForIdentity calls = %d, want 3", n)
	}
	if n := logs.Count("device clock differs from AWS"); n != 1 {
		t.Fatalf("skew logged %d times, want once; log:\n%s", n, logs)
	}

	// A 403 upgrade answer's Date (via ObserveResponse) moves the offset.
	resp := &http.Response{Header: http.Header{"Date": {time.Now().Add(-10 * time.Minute).UTC().Format(http.TimeFormat)}}}
	p.ObserveResponse(resp)
	if s := p.Status().ClockSkew; (s + 10*time.Minute).Abs() > 2*time.Second {
		t.Fatalf("ClockSkew after ObserveResponse = %v, want about -10m", s)
	}
	if n := logs.Count("device clock differs from AWS"); n != 2 {
		t.Fatalf("a large change of skew logged %d times in all, want 2", n)
	}
	p.ObserveResponse(&http.Response{Header: http.Header{"Date": {time.Now().UTC().Format(http.TimeFormat)}}})
	if s := p.Status().ClockSkew; s != 0 {
		t.Fatalf("ClockSkew with an agreeing Date = %v, want 0", s)
	}
	p.ObserveResponse(nil)
	p.ObserveResponse(&http.Response{Header: http.Header{"Date": {"garbage"}}})
	if s := p.Status().ClockSkew; s != 0 {
		t.Fatalf("ClockSkew changed by a bad Date: %v", s)
	}
}

func TestCognitoEndpointFromEnvAndOptionsWins(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Setenv(EnvCognitoEndpoint, cog.URL())
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) { o.CognitoEndpoint = "" })
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatalf("Endpoint with %s: %v", EnvCognitoEndpoint, err)
	}

	// Options wins: the env var points at a closed port.
	t.Setenv(EnvCognitoEndpoint, "http://127.0.0.1:1")
	p2, _ := newCognitoProvider(t, cog, t.TempDir())
	if _, _, err := p2.Endpoint(ctx); err != nil {
		t.Fatalf("Endpoint with Options.CognitoEndpoint and a bad env var: %v", err)
	}
	if n := cog.GetIdCalls(); n != 2 {
		t.Fatalf("GetId calls = %d, want 2", n)
	}

	t.Setenv(EnvCognitoEndpoint, "not a url")
	if _, err := New(Options{URL: testIoTURL, IdentityPoolID: cog.PoolID(), StateDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), EnvCognitoEndpoint) {
		t.Fatalf("New with a bad %s: err = %v", EnvCognitoEndpoint, err)
	}
}

func TestDefaultHTTPClientWorks(t *testing.T) {
	cog := fakeaws.NewCognito(t)
	p, _ := newCognitoProvider(t, cog, t.TempDir(), func(o *Options) { o.HTTPClient = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := p.Endpoint(ctx); err != nil {
		t.Fatalf("Endpoint with the default HTTP client: %v", err)
	}
}
