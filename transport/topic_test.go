package transport

import (
	"errors"
	"testing"

	"github.com/edge-agent/edge-agent/topic"
)

// The rules themselves are tested (table and fuzz) in package topic; here only that the transport's
// names are the same rules and the same sentinel.
func TestTopicRulesDelegate(t *testing.T) {
	if ErrInvalidTopic != topic.ErrInvalid {
		t.Fatal("ErrInvalidTopic is not topic.ErrInvalid")
	}
	if maxTopicLen != 65535 {
		t.Fatalf("maxTopicLen = %d", maxTopicLen)
	}
	for _, s := range []string{"a/b", "", "a/+", "a/#", "a\x00", "a\x01b", "a\u0085", "a\ufdd0", "a\uffff", "\U0010ffff", "$share/g/a", "a/#/b"} {
		if got, want := ValidateTopic(s), topic.Validate(s); (got == nil) != (want == nil) {
			t.Errorf("ValidateTopic(%q) = %v, topic.Validate = %v", s, got, want)
		} else if got != nil && (!errors.Is(got, ErrInvalidTopic) || got.Error() != want.Error()) {
			t.Errorf("ValidateTopic(%q) = %v, want %v wrapping ErrInvalidTopic", s, got, want)
		}
		if got, want := ValidateFilter(s), topic.ValidateFilter(s); (got == nil) != (want == nil) {
			t.Errorf("ValidateFilter(%q) = %v, topic.ValidateFilter = %v", s, got, want)
		}
		for _, f := range []string{"#", "a/+", s} {
			if Match(f, s) != topic.Match(f, s) {
				t.Errorf("Match(%q, %q) differs from topic.Match", f, s)
			}
		}
	}
	if err := ValidateTopic("a\x01b"); err == nil || err.Error() != `invalid MQTT topic: topic "a\x01b" contains control character U+0001 at byte 1` {
		t.Errorf("ValidateTopic(\"a\\x01b\") = %v", err)
	}
}
