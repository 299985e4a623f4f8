package awsiot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edge-agent/edge-agent/sigv4"
)

// ErrNoCredentials means neither the AWS environment variables nor the shared
// credentials/config files hold credentials for the selected profile.
var ErrNoCredentials = errors.New("no AWS credentials found")

// staticCredentials resolves long-term (or externally rotated) credentials the
// way the AWS CLI and SDKs do for the static cases: the environment variables
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN first, then the
// profile AWS_PROFILE (or AWS_DEFAULT_PROFILE, else "default") in the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) and
// then in the shared config file (AWS_CONFIG_FILE, else ~/.aws/config).
// The files are read on every call so rotated keys are picked up.
func (p *Provider) staticCredentials() (sigv4.Credentials, error) {
	c, source, err := resolveStatic(os.Getenv)
	p.mu.Lock()
	if err != nil {
		p.lastErr = err.Error()
	} else {
		p.lastErr, p.source = "", source
	}
	p.mu.Unlock()
	if err == nil {
		p.learnCredentials(c)
	}
	return c, err
}

func resolveStatic(getenv func(string) string) (sigv4.Credentials, string, error) {
	akid := firstNonEmpty(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY"))
	secret := firstNonEmpty(getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_KEY"))
	switch {
	case akid != "" && secret != "":
		return sigv4.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: getenv("AWS_SESSION_TOKEN")}, "environment", nil
	case akid != "":
		return sigv4.Credentials{}, "", errors.New("awsiot: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both (and AWS_SESSION_TOKEN for temporary keys)")
	case secret != "":
		return sigv4.Credentials{}, "", errors.New("awsiot: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both")
	}

	profile := firstNonEmpty(getenv("AWS_PROFILE"), getenv("AWS_DEFAULT_PROFILE"), "default")
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	credFile := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" && home != "" {
		credFile = filepath.Join(home, ".aws", "credentials")
	}
	confFile := getenv("AWS_CONFIG_FILE")
	if confFile == "" && home != "" {
		confFile = filepath.Join(home, ".aws", "config")
	}

	var looked []string
	for _, f := range []struct {
		path    string
		section string
	}{
		{credFile, profile},
		{confFile, configSection(profile)},
	} {
		if f.path == "" {
			continue
		}
		looked = append(looked, f.path)
		data, err := os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return sigv4.Credentials{}, "", fmt.Errorf("awsiot: reading AWS shared config %s: %w", f.path, err)
		}
		sections, err := parseINI(data)
		if err != nil {
			return sigv4.Credentials{}, "", fmt.Errorf("awsiot: %s: %w", f.path, err)
		}
		kv, ok := sections[f.section]
		if !ok {
			continue
		}
		if kv["aws_access_key_id"] != "" && kv["aws_secret_access_key"] != "" {
			return sigv4.Credentials{
				AccessKeyID:     kv["aws_access_key_id"],
				SecretAccessKey: kv["aws_secret_access_key"],
				SessionToken:    kv["aws_session_token"],
			}, "shared-config:" + profile, nil
		}
		for _, k := range []string{"role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file", "credential_source"} {
			if kv[k] != "" {
				return sigv4.Credentials{}, "", fmt.Errorf("awsiot: profile %q in %s uses %s, which edge-agent does not support: give it aws_access_key_id and aws_secret_access_key, or use a Cognito identity pool ([cognito] identity_pool_id)", profile, f.path, k)
			}
		}
		if kv["aws_access_key_id"] != "" || kv["aws_secret_access_key"] != "" {
			return sigv4.Credentials{}, "", fmt.Errorf("awsiot: profile %q in %s needs both aws_access_key_id and aws_secret_access_key", profile, f.path)
		}
	}
	return sigv4.Credentials{}, "", fmt.Errorf("awsiot: %w: set [cognito] identity_pool_id, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put profile %q (AWS_PROFILE) into one of: %s",
		ErrNoCredentials, profile, strings.Join(looked, ", "))
}

// configSection is the section name of a profile in the shared config file.
func configSection(profile string) string {
	if profile == "default" {
		return "default"
	}
	return "profile " + profile
}

// parseINI parses the AWS shared credentials/config file format: [section]
// headers, key = value lines, full-line comments starting with # or ;.
// Section names are trimmed, with runs of blanks collapsed ("profile  x" is
// "profile x"); keys are lower-cased; values are trimmed. Indented lines
// after a key with an empty value (nested settings such as "s3 =") are
// skipped. In the config file "[profile default]" is folded into "default".
// A later key or section repeats and overrides an earlier one.
func parseINI(data []byte) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var cur map[string]string
	nested := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if n == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		indented := raw[0] == ' ' || raw[0] == '\t'
		if indented && nested {
			continue
		}
		nested = false
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: section header %q has no closing ]", n, truncate(line, 60))
			}
			name := strings.Join(strings.Fields(line[1:end]), " ")
			if name == "" {
				return nil, fmt.Errorf("line %d: empty section name", n)
			}
			if name == "profile default" {
				name = "default"
			}
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			cur = out[name]
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: expected key = value or [section], got %q", n, truncate(redactLine(line), 60))
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		if key == "" {
			return nil, fmt.Errorf("line %d: empty key", n)
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: key %q outside of any [section]", n, key)
		}
		if val == "" {
			nested = true
		}
		cur[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// redactLine keeps a malformed line's shape in an error without echoing what
// may be a secret.
func redactLine(s string) string {
	if len(s) <= 4 {
		return s
	}
	return s[:4] + strings.Repeat("*", min(len(s)-4, 8))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
