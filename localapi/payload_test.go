package localapi

import "testing"

func TestEncodePayload(t *testing.T) {
	for _, tc := range []struct {
		in        string
		text, b64 string // "" for nil
	}{
		{"héllo", "héllo", ""},
		{"", "", ""},
		{"\xff\x00", "", "/wA="},
	} {
		text, b64 := EncodePayload([]byte(tc.in))
		if tc.in == "" {
			if text == nil || *text != "" || b64 != nil {
				t.Errorf("EncodePayload(empty) = %v, %v; want empty text", text, b64)
			}
			continue
		}
		if got := deref(text); got != tc.text || deref(b64) != tc.b64 || (text == nil) == (b64 == nil) {
			t.Errorf("EncodePayload(%q) = %q, %q; want %q, %q", tc.in, got, deref(b64), tc.text, tc.b64)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
