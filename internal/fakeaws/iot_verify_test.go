package fakeaws

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// TestVerifyKnownVector checks the fake's verifier, on its own, against a
// signature computed by a third implementation (Python's hmac/hashlib) for
// AWS's documentation credentials.
func TestVerifyKnownVector(t *testing.T) {
	const raw = "X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" +
		"&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=abaa19ec946afb81af70a8d779058f5587de5b38d677c12d9f47702a8744126e"
	creds := NewCredStore()
	creds.Allow(Cred{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "tok+/="})
	at := time.Date(2015, 8, 30, 12, 38, 0, 0, time.UTC)
	req := func(q string) *http.Request {
		return &http.Request{Method: http.MethodGet, Host: "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
			URL: &url.URL{Path: "/mqtt", RawQuery: q}, Header: http.Header{}}
	}
	var info sigInfo
	if ref := verifyPresigned(req(raw+"&X-Amz-Security-Token=tok%2B%2F%3D"), at, "us-east-1", 5*time.Minute, creds, &info); ref != nil {
		t.Fatalf("known-good vector refused: %+v", ref)
	}
	if info.accessKeyID != "AKIDEXAMPLE" || info.region != "us-east-1" || !info.token {
		t.Fatalf("info %+v", info)
	}
	// The same URL, one bit of the signature flipped.
	bad := raw[:len(raw)-1] + "f"
	if ref := verifyPresigned(req(bad+"&X-Amz-Security-Token=tok%2B%2F%3D"), at, "us-east-1", 5*time.Minute, creds, &info); ref == nil || ref.reason != ReasonBadSignature {
		t.Fatalf("tampered signature: %+v", ref)
	}
	// Six minutes later the same URL is too old.
	if ref := verifyPresigned(req(raw+"&X-Amz-Security-Token=tok%2B%2F%3D"), at.Add(4*time.Minute), "us-east-1", 5*time.Minute, creds, &info); ref == nil || ref.reason != ReasonClockSkew {
		t.Fatalf("old URL: %+v", ref)
	}
}

func TestParseConnect(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		id   string
		err  bool
	}{
		{"mqtt5", connectV5, "dev-1", false},
		{"mqtt311", []byte{0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 5, 'd', 'e', 'v', '-', '2'}, "dev-2", false},
		{"mqtt5 with properties", []byte{0x10, 0x17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60,
			5, 0x11, 0, 0, 0, 60, // Session Expiry Interval 60
			0, 5, 'd', 'e', 'v', '-', '3'}, "dev-3", false},
		{"empty client id", []byte{0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 0}, "", false},
		{"publish", []byte{0x30, 0x03, 0, 1, 'a'}, "", true},
		{"truncated", connectV5[:10], "", true},
		{"bad protocol", []byte{0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 5, 'd', 'e', 'v', '-', '2'}, "", true},
		{"id longer than packet", []byte{0x10, 0x0e, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 9, 'd', 'e'}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := parseConnect(tc.pkt)
			if (err != nil) != tc.err || id != tc.id {
				t.Fatalf("parseConnect = %q, %v; want %q, error %t", id, err, tc.id, tc.err)
			}
		})
	}
}

func TestConnectSnifferAcrossFrames(t *testing.T) {
	var s connectSniffer
	for i := 0; i < len(connectV5)-1; i++ {
		if _, done, _ := s.feed(connectV5[i : i+1]); done {
			t.Fatalf("done after %d of %d bytes", i+1, len(connectV5))
		}
	}
	id, done, err := s.feed(append(connectV5[len(connectV5)-1:], 0xc0, 0))
	if !done || err != nil || id != "dev-1" {
		t.Fatalf("feed = %q, %t, %v", id, done, err)
	}
	if _, done, _ := s.feed(connectV5); done {
		t.Fatal("sniffer reported a second packet")
	}
}

func FuzzParseConnect(f *testing.F) {
	f.Add(connectV5)
	f.Add([]byte{0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 5, 'd', 'e', 'v', '-', '2'})
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x10, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseConnect(b)
		if err != nil && id != "" {
			t.Fatalf("error %v with id %q", err, id)
		}
		// Fed byte by byte, the sniffer agrees with parseConnect on whole packets.
		var s connectSniffer
		for i := range b {
			sid, done, serr := s.feed(b[i : i+1])
			if done {
				size, _ := packetSize(b)
				if size == len(b) && (sid != id || (serr == nil) != (err == nil)) {
					t.Fatalf("sniffer %q,%v; parseConnect %q,%v", sid, serr, id, err)
				}
				break
			}
		}
	})
}

// FuzzVerifyPresigned: arbitrary query strings never panic the verifier and
// are never accepted without a registered key.
func FuzzVerifyPresigned(f *testing.F) {
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" +
		"&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=abaa19ec946afb81af70a8d779058f5587de5b38d677c12d9f47702a8744126e")
	f.Add("X-Amz-Credential=a/b/c/d/e/f&X-Amz-Date=x")
	f.Add("%zz=1")
	f.Add("X-Amz-SignedHeaders=host;;b&X-Amz-Expires=-1")
	empty := NewCredStore()
	known := NewCredStore()
	known.Allow(Cred{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})
	at := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, q string) {
		r := &http.Request{Method: http.MethodGet, Host: "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
			URL: &url.URL{Path: "/mqtt", RawQuery: q}, Header: http.Header{}}
		var info sigInfo
		if ref := verifyPresigned(r, at, "us-east-1", 5*time.Minute, empty, &info); ref == nil {
			t.Fatalf("accepted %q with no credentials registered", q)
		} else if ref.reason == "" || ref.message == "" {
			t.Fatalf("refusal without reason or message: %+v", ref)
		}
		_ = verifyPresigned(r, at, "us-east-1", 5*time.Minute, known, &info)
	})
}
