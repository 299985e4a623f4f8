package awsiot

import (
	"strings"
	"testing"
	"time"
)

func TestDiagnose(t *testing.T) {
	const (
		id       = "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"
		region   = "eu-west-1"
		endpoint = "wss://a1b2c3-ats.iot.eu-west-1.amazonaws.com/mqtt"
	)
	attach := "aws iot attach-policy --policy-name <your-policy> --target " + id
	cases := []struct {
		name       string
		kind       string
		status     int
		identityID string
		skew       time.Duration
		want       []string
		wantNot    []string
		firstCause string // text that must come before "Permissions"
	}{
		{
			name: "closed after connect names the identity and the attach command",
			kind: KindClosedAfterConnect, identityID: id,
			want: []string{id, attach, "--region " + region, "iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "edge-agent identity", endpoint},
		},
		{
			name: "closed after connect without a pool talks about the IAM user/role",
			kind: KindClosedAfterConnect,
			want: []string{"IAM user or role", "iot:Connect"}, wantNot: []string{"Cognito identity eu-west-1"},
		},
		{
			name: "403 with a small skew: permissions first, clock unlikely",
			kind: KindUpgradeRefused, status: 403, identityID: id, skew: 40 * time.Second,
			want: []string{"HTTP 403", id, "describe-endpoint", `region "eu-west-1"`, "iot:Connect", "Credentials", "unlikely the cause", "40s behind"},
		},
		{
			name: "403 with a 1 h skew: clock first",
			kind: KindUpgradeRefused, status: 403, identityID: id, skew: time.Hour,
			want: []string{"1h0m0s behind AWS time", "NTP"}, firstCause: "Clock",
		},
		{
			name: "403 with the device clock ahead",
			kind: KindUpgradeRefused, status: 403, skew: -10 * time.Minute,
			want: []string{"10m0s ahead of AWS time", "AWS_ACCESS_KEY_ID"},
		},
		{
			name: "404 means a wrong path or host",
			kind: KindUpgradeRefused, status: 404,
			want: []string{"HTTP 404", "/mqtt"},
		},
		{
			name: "cognito failure",
			kind: KindCognito, identityID: id, skew: 6 * time.Minute,
			want: []string{id, "guest access", IdentityFileName, "attach-policy", "6m0s behind"},
		},
		{
			name: "unknown kind still names the identity",
			kind: "something-else", status: 500, identityID: id,
			want: []string{"something-else", "HTTP 500", attach},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Diagnose(Failure{Kind: tc.kind, Status: tc.status, IdentityID: tc.identityID, Region: region, Endpoint: endpoint, Skew: tc.skew})
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
			if tc.firstCause != "" {
				i, j := strings.Index(got, tc.firstCause), strings.Index(got, "Permissions")
				if i < 0 || j < 0 || i > j {
					t.Errorf("%q should be the first cause, before Permissions:\n%s", tc.firstCause, got)
				}
			}
			if strings.HasSuffix(got, "\n") || strings.Contains(got, "%!") {
				t.Errorf("badly formatted:\n%s", got)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	pool := "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"not wss", Options{URL: "https://a-ats.iot.eu-west-1.amazonaws.com/mqtt"}, "must be wss://"},
		{"empty", Options{}, "must be wss://"},
		{"no region", Options{URL: "wss://broker.example.com/mqtt"}, "broker.region"},
		{"bad pool", Options{URL: testIoTURL, IdentityPoolID: "eu-west-1_abc", StateDir: "/x"}, "identity_pool_id"},
		{"no state dir", Options{URL: testIoTURL, IdentityPoolID: pool}, "state_dir"},
		{"bad endpoint", Options{URL: testIoTURL, IdentityPoolID: pool, StateDir: "/x", CognitoEndpoint: "ftp://x"}, "http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	p, err := New(Options{URL: "wss://broker.example.com:8443/mqtt", Region: "us-east-2"})
	if err != nil || p.Region() != "us-east-2" {
		t.Fatalf("explicit region: %v, %v", p, err)
	}
	p, err = New(Options{URL: testIoTURL})
	if err != nil || p.Region() != "eu-west-1" {
		t.Fatalf("region from host: %v, %v", p, err)
	}
}

func TestValidIdentityID(t *testing.T) {
	for id, want := range map[string]bool{
		"eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd":     true,
		"us-gov-west-1:0A1B2C3D-0000-4000-8000-00000000ABCD": true,
		"eu-west-1:0a1b2c3d-0000-4000-8000-00000000abc":      false,
		"eu-west-1:0a1b2c3d_0000-4000-8000-00000000abcd":     false,
		"eu-west:0a1b2c3d-0000-4000-8000-00000000abcd":       false,
		"EU-west-1:0a1b2c3d-0000-4000-8000-00000000abcd":     false,
		"0a1b2c3d-0000-4000-8000-00000000abcd":               false,
		"eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd\n":   false,
		"": false,
	} {
		if got := ValidIdentityID(id); got != want {
			t.Errorf("ValidIdentityID(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzValidIdentityID(f *testing.F) {
	f.Add("eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd")
	f.Add("cn-north-1:ffffffff-ffff-ffff-ffff-ffffffffffff")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidIdentityID(s) {
			return
		}
		region, rest, _ := strings.Cut(s, ":")
		if len(rest) != 36 || region == "" || strings.ContainsAny(s, " \n\t/") || regionOf(s) != region {
			t.Fatalf("accepted %q", s)
		}
	})
}

// The advice follows what AWS IoT evaluates: for an authenticated identity the
// attached IoT policy comes first; for a guest identity the pool's
// unauthenticated role does (Failure.Authenticated false, the zero value).
func TestDiagnoseAuthenticated(t *testing.T) {
	const (
		id       = "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"
		region   = "eu-west-1"
		endpoint = "wss://a1b2c3-ats.iot.eu-west-1.amazonaws.com/mqtt"
	)
	attach := "aws iot attach-policy --policy-name <your-policy> --target " + id + " --region " + region
	before := func(t *testing.T, text, first, second string) {
		t.Helper()
		i, j := strings.Index(text, first), strings.Index(text, second)
		if i < 0 || j < 0 || i > j {
			t.Errorf("%q should come before %q in:\n%s", first, second, text)
		}
	}

	auth := Diagnose(Failure{Kind: KindClosedAfterConnect, Status: 0, IdentityID: id, Authenticated: true, Region: region, Endpoint: endpoint})
	before(t, auth, "1. No AWS IoT policy is attached to the Cognito identity "+id, "2. The identity pool's authenticated IAM role lacks")
	for _, want := range []string{attach, "authenticated (cognito.login_provider)", "what AWS IoT evaluates"} {
		if !strings.Contains(auth, want) {
			t.Errorf("authenticated: missing %q in:\n%s", want, auth)
		}
	}
	if strings.Contains(auth, "guest") || strings.Contains(auth, "unauthenticated") {
		t.Errorf("authenticated advice talks about guest identities:\n%s", auth)
	}

	guest := Diagnose(Failure{Kind: KindClosedAfterConnect, Status: 0, IdentityID: id, Authenticated: false, Region: region, Endpoint: endpoint})
	before(t, guest, "1. The identity pool's unauthenticated (guest) IAM role lacks", "2. No AWS IoT policy is attached")
	if !strings.Contains(guest, attach) || !strings.Contains(guest, "cognito.login_provider") {
		t.Errorf("guest advice lacks the attach command or the way to authenticated identities:\n%s", guest)
	}

	if d := Diagnose(Failure{Kind: KindUpgradeRefused, Status: 403, IdentityID: id, Authenticated: true, Region: region, Endpoint: endpoint}); !strings.Contains(d, "pool's authenticated IAM role") || strings.Contains(d, "guest") {
		t.Errorf("403 for an authenticated identity:\n%s", d)
	}
	if d := Diagnose(Failure{Kind: KindUpgradeRefused, Status: 403, IdentityID: id, Authenticated: false, Region: region, Endpoint: endpoint}); !strings.Contains(d, "unauthenticated (guest) IAM role") {
		t.Errorf("403 for a guest identity:\n%s", d)
	}
	d := Diagnose(Failure{Kind: KindCognito, Status: 0, IdentityID: id, Authenticated: true, Region: region, Endpoint: endpoint})
	if !strings.Contains(d, "cognito.login_token_file") || !strings.Contains(d, "cognito.login_provider") || strings.Contains(d, "guest access") {
		t.Errorf("Cognito failure for an authenticated identity:\n%s", d)
	}
	for _, text := range []string{auth, guest, d} {
		if strings.HasSuffix(text, "\n") || strings.Contains(text, "%!") {
			t.Errorf("badly formatted:\n%s", text)
		}
	}
	t.Logf("authenticated, closed after CONNECT:\n%s", auth)
}

// The identity-not-found advice names the broker's own identity file (several brokers keep one each).
func TestDiagnoseNamesTheBrokersIdentityFile(t *testing.T) {
	f := Failure{Kind: KindCognito, IdentityID: "eu-west-1:1", Region: "eu-west-1", Endpoint: "wss://x/mqtt"}
	if got := Diagnose(f); !strings.Contains(got, "delete cognito-identity-id in state_dir") {
		t.Fatalf("default broker: %s", got)
	}
	f.IdentityFile = IdentityFileFor("aws")
	if got := Diagnose(f); !strings.Contains(got, "delete cognito-identity-id-aws in state_dir") {
		t.Fatalf("broker aws: %s", got)
	}
}
