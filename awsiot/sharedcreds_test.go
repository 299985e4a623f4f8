package awsiot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// isolateAWSEnv clears every variable the static chain reads and points HOME
// at an empty directory, so the machine's own AWS setup cannot leak in.
func isolateAWSEnv(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", home)
	return home
}

func newStaticProvider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(Options{URL: testIoTURL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvCredentials(t *testing.T) {
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret/with+chars")
	t.Setenv("AWS_SESSION_TOKEN", "tok+en/with=chars")
	p := newStaticProvider(t)

	u, hdr, err := p.Endpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hdr != nil {
		t.Fatalf("Endpoint returned header %v, want nil", hdr)
	}
	sp := parseSigned(t, u)
	if sp.AccessKeyID != "AKIAENVEXAMPLE000001" || sp.Token != "tok+en/with=chars" || sp.Region != "eu-west-1" {
		t.Fatalf("signed %+v, want the env credentials in eu-west-1", sp)
	}
	if st := p.Status(); st.CredentialSource != "environment" || st.IdentityID != "" || !st.CredentialsExpire.IsZero() {
		t.Fatalf("Status = %+v", st)
	}
	if _, err := p.IdentityID(context.Background()); err == nil || !strings.Contains(err.Error(), "identity_pool_id") {
		t.Fatalf("IdentityID without a pool: %v", err)
	}
	// Run without a pool just waits for its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, _, err := p.Endpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY is not") {
		t.Fatalf("Endpoint with only AWS_ACCESS_KEY_ID: %v", err)
	}
}

func TestSharedCredentialsFileAndProfiles(t *testing.T) {
	home := isolateAWSEnv(t)
	awsDir := filepath.Join(home, ".aws")
	if err := os.MkdirAll(awsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(awsDir, "credentials"), `# comment
[default]
aws_access_key_id = AKIADEFAULT000000001
aws_secret_access_key = defaultsecret

[ dev ]
; another comment
AWS_ACCESS_KEY_ID=AKIADEV0000000000001
aws_secret_access_key   =   devsecret
aws_session_token = devtoken

[assume]
role_arn = arn:aws:iam::123456789012:role/x
source_profile = default
`)
	write(filepath.Join(awsDir, "config"), `[default]
region = eu-west-1
[profile cfgonly]
aws_access_key_id = AKIACFGONLY000000001
aws_secret_access_key = cfgsecret
s3 =
    max_concurrent_requests = 20
`)
	p := newStaticProvider(t)
	akid := func() string {
		t.Helper()
		u, _, err := p.Endpoint(context.Background())
		if err != nil {
			t.Fatalf("Endpoint (AWS_PROFILE=%q): %v", os.Getenv("AWS_PROFILE"), err)
		}
		return parseSigned(t, u).AccessKeyID
	}

	if got := akid(); got != "AKIADEFAULT000000001" {
		t.Fatalf("default profile: signed with %q", got)
	}
	if st := p.Status(); st.CredentialSource != "shared-config:default" {
		t.Fatalf("source = %q", st.CredentialSource)
	}
	t.Setenv("AWS_PROFILE", "dev")
	if got := akid(); got != "AKIADEV0000000000001" {
		t.Fatalf("dev profile: signed with %q", got)
	}
	t.Setenv("AWS_PROFILE", "cfgonly")
	if got := akid(); got != "AKIACFGONLY000000001" {
		t.Fatalf("profile from the config file: signed with %q", got)
	}

	// Environment variables beat the files, as in the AWS CLI/SDKs.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV0000000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	if got := akid(); got != "AKIAENV0000000000001" {
		t.Fatalf("env over profile: signed with %q", got)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")

	// An explicit file location, re-read on each call (rotation).
	other := filepath.Join(t.TempDir(), "creds")
	write(other, "[cfgonly]\naws_access_key_id = AKIAOTHER00000000001\naws_secret_access_key = s\n")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", other)
	if got := akid(); got != "AKIAOTHER00000000001" {
		t.Fatalf("AWS_SHARED_CREDENTIALS_FILE: signed with %q", got)
	}
	write(other, "[cfgonly]\naws_access_key_id = AKIAROTATED0000000001\naws_secret_access_key = s\n")
	if got := akid(); got != "AKIAROTATED0000000001" {
		t.Fatalf("rotated file not re-read: signed with %q", got)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "")

	t.Setenv("AWS_PROFILE", "assume")
	if _, _, err := p.Endpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "role_arn") {
		t.Fatalf("role_arn profile: err = %v, want it named as unsupported", err)
	}
	t.Setenv("AWS_PROFILE", "nosuch")
	_, _, err := p.Endpoint(context.Background())
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), filepath.Join(awsDir, "credentials")) {
		t.Fatalf("missing profile: err = %v", err)
	}
	if p.Status().LastError == "" {
		t.Fatal("Status().LastError empty after a credentials error")
	}
}

func TestParseINI(t *testing.T) {
	got, err := parseINI([]byte("\ufeff[profile  a  b]\nK = v = w\n\n[profile default]\nx=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got["profile a b"]["k"] != "v = w" || got["default"]["x"] != "1" {
		t.Fatalf("parsed %v", got)
	}
	for _, bad := range []string{"k = v\n", "[unterminated\n", "[]\n", "[s]\njustaword\n", "[s]\n= v\n"} {
		if _, err := parseINI([]byte(bad)); err == nil {
			t.Errorf("parseINI(%q) accepted", bad)
		}
	}
	// A malformed line must not be echoed in full (it may hold a secret).
	_, err = parseINI([]byte("[s]\nwJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n"))
	if err == nil || strings.Contains(err.Error(), "EXAMPLEKEY") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error for a malformed line: %v", err)
	}
}

func FuzzParseINI(f *testing.F) {
	f.Add([]byte("[default]\naws_access_key_id = A\naws_secret_access_key = B\n"))
	f.Add([]byte("[profile x]\ns3 =\n  a = b\nk=v\n"))
	f.Add([]byte("\ufeff# c\n;c\n[ a ]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, err := parseINI(data)
		if err != nil {
			return
		}
		for name, kv := range secs {
			if name == "" || strings.TrimSpace(name) != name || kv == nil {
				t.Fatalf("bad section %q", name)
			}
			for k, v := range kv {
				if k == "" || k != strings.ToLower(k) || strings.TrimSpace(v) != v || strings.ContainsAny(k+v, "\n") {
					t.Fatalf("bad pair %q=%q", k, v)
				}
				if utf8.ValidString(string(data)) && !utf8.ValidString(k+v) {
					t.Fatalf("invalid UTF-8 from valid input: %q=%q", k, v)
				}
			}
		}
	})
}
