package redact

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// A session token shaped like a real one: long, with characters that URL encoding changes.
const token = "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQDx+abc/def==" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789"

func TestStringScrubsEachForm(t *testing.T) {
	s := NewSet()
	s.Add("broker password", "hunter22") // 8 bytes: kept
	s.Add("broker password", "short")    // 5 bytes: ignored
	s.Add("aws session token", token)
	for _, c := range []struct{ name, in string }{
		{"raw", "login failed for hunter22!"},
		{"raw token", "403 Forbidden: token=" + token + " was refused"},
		{"query escaped", "GET /mqtt?X-Amz-Security-Token=" + url.QueryEscape(token) + "&x=1"},
		{"query escaped, lower-case hex", "token=" + strings.ToLower(url.QueryEscape(token))},
		{"path escaped", "/" + url.PathEscape(token) + "/"},
		{"base64", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(token))},
		{"base64url", base64.URLEncoding.EncodeToString([]byte(token))},
		{"JSON", `{"message":"bad token ` + strings.ReplaceAll(token, "/", `\/`) + `"}`},
		{"Go quoted", fmt.Sprintf("%q", "pw\n"+"hunter22")},
		{"twice", token + token + "hunter22hunter22"},
		{"truncated at the end", "body: " + token[:40]},
		{"truncated, then more text", "body: " + url.QueryEscape(token)[:70] + "…; retrying in 2s"},
	} {
		out := s.String(c.in)
		if !strings.Contains(out, Placeholder) {
			t.Errorf("%s: %q → %q: nothing redacted", c.name, c.in, out)
		}
		for _, leak := range []string{"hunter22", token[:16], token[20:36], token[len(token)-16:], url.QueryEscape(token)[20:36]} {
			if strings.Contains(out, leak) {
				t.Errorf("%s: %q still holds %q", c.name, out, leak)
			}
		}
	}
	if got := s.String("short text, short password"); got != "short text, short password" {
		t.Errorf("a value under MinLen was scrubbed: %q", got)
	}
	// A coincidence of 8 bytes with a long secret is not a secret.
	if in := "IQoJb3Jp is not enough"; s.String(in) != in {
		t.Errorf("an 8-byte prefix of a long secret was scrubbed: %q", s.String(in))
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

func TestExactOutput(t *testing.T) {
	s := NewSet()
	s.Add("p", "s3cr3t-value")
	for in, want := range map[string]string{
		"a s3cr3t-value b":             "a [redacted] b",
		"s3cr3t-values3cr3t-value":     "[redacted][redacted]",
		"x=s3cr3t-value&y=s3cr3t-valu": "x=[redacted]&y=s3cr3t-valu", // a 12-byte secret is only scrubbed whole
		"no secret here":               "no secret here",
	} {
		if got := s.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOldValuesAreForgotten(t *testing.T) {
	s := NewSet()
	s.Add("broker password", "the-broker-password")
	var toks []string
	for i := range keepPerKind + 2 {
		toks = append(toks, fmt.Sprintf("%02d-session-token-%s", i, strings.Repeat("x", 20)))
		s.Add("aws session token", toks[i])
		s.Add("aws session token", toks[i]) // again: no duplicate
	}
	if s.Len() != keepPerKind+1 {
		t.Fatalf("Len = %d, want %d", s.Len(), keepPerKind+1)
	}
	for i, tok := range toks {
		scrubbed := !strings.Contains(s.String("t="+tok), tok)
		if want := i >= 2; scrubbed != want {
			t.Errorf("token %d scrubbed=%v, want %v", i, scrubbed, want)
		}
	}
	if strings.Contains(s.String("the-broker-password"), "password") {
		t.Error("the broker password was forgotten")
	}
}

func TestNilSet(t *testing.T) {
	var s *Set
	s.Add("x", "0123456789")
	if s.String("0123456789") != "0123456789" || s.Len() != 0 {
		t.Fatal("nil Set changed text")
	}
}

func TestConcurrentAddAndString(t *testing.T) {
	s := NewSet()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				v := fmt.Sprintf("secret-%d-%04d-abcdefgh", g, i)
				s.Add(fmt.Sprint("kind", g), v)
				if out := s.String("x " + v + " y"); strings.Contains(out, v) {
					t.Errorf("%q not scrubbed right after Add", v)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzString(f *testing.F) {
	f.Add("a hunter22 b", "hunter22")
	f.Add("token="+url.QueryEscape(token), token)
	f.Add("cut: "+token[:30], token)
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")
	f.Add("abababababababababab", "abababab")
	f.Fuzz(func(t *testing.T, text, secret string) {
		s := NewSet()
		s.Add("k", secret)
		out := s.String(text)
		if len(secret) < MinLen {
			if out != text {
				t.Fatalf("secret %q under MinLen changed %q to %q", secret, text, out)
			}
			return
		}
		// A secret without brackets cannot overlap a Placeholder, so it must be gone.
		if !strings.ContainsAny(secret, "[]") && strings.Contains(out, secret) {
			t.Fatalf("String(%q) = %q still holds %q", text, out, secret)
		}
		if !strings.Contains(text, secret[:min(len(secret), partialMin)]) && !strings.Contains(out, Placeholder) && out != text {
			t.Fatalf("String(%q) = %q changed text without redacting", text, out)
		}
	})
}

func BenchmarkStringNoSecret(b *testing.B) {
	s := NewSet()
	s.Add("broker password", "the-broker-password")
	s.Add("aws secret key", strings.Repeat("k", 40))
	s.Add("aws session token", token)
	s.Add("cognito login token", "eyJhbGciOiJSUzI1NiJ9."+strings.Repeat("p", 600))
	msg := "mqtt connection attempt failed: dial tcp 10.0.0.1:443: connect: connection refused"
	for b.Loop() {
		_ = s.String(msg)
	}
}
