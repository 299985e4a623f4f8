package transport

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"a//b", true},
		{"$SYS/x", true},
		{"sensors/温度", true},
		{"", false},
		{"a/+", false},
		{"a/#", false},
		{"a+b", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
		{strings.Repeat("a", 65535), true},
		{strings.Repeat("a", 65536), false},
	} {
		err := ValidateTopic(tc.topic)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopic(%.20q) = %v, want ok=%v", tc.topic, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("error %v does not wrap ErrInvalidTopic", err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"#", true},
		{"+", true},
		{"a/#", true},
		{"a/+/c", true},
		{"+/+", true},
		{"/+", true},
		{"a/b", true},
		{"$share/g/a/#", true},
		{"$share/g/#", true},
		{"", false},
		{"a/#/c", false},
		{"a#", false},
		{"a/b#", false},
		{"a+/b", false},
		{"#/a", false},
		{"a\x00", false},
		{"\xc3\x28", false},
		{"$share/g", false},
		{"$share//a", false},
		{"$share/g+/a", false},
		{"$share/g/", false},
		{"$share/g/a#", false},
	} {
		err := ValidateFilter(tc.filter)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateFilter(%q) = %v, want ok=%v", tc.filter, err, tc.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a/", true}, // empty level
		{"a/+/c", "a/b/c", true},
		{"+/+", "/x", true},
		{"+", "/x", false},
		{"/+", "/x", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true}, // '#' includes the parent [MQTT-4.7.1-2]
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"+/#", "a", true},
		{"a/b/#", "a", false},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"$share/g/a/+", "a/b", true},
		{"$share/g/#", "$SYS/a", false},
		{"a/#/c", "a/b/c", false}, // invalid filter never matches
		{"a/b", "a/+", false},     // invalid topic never matches
		{"", "", false},
	} {
		if got := Match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// refMatch is an independent, level-slice implementation used as the oracle in FuzzMatch.
func refMatch(filter, topic string) bool {
	if ValidateFilter(filter) != nil || ValidateTopic(topic) != nil {
		return false
	}
	if strings.HasPrefix(filter, "$share/") {
		filter = strings.SplitN(filter, "/", 3)[2]
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a"}, {"+/+", "/x"}, {"#", "$SYS"}, {"$share/g/+", "x"}, {"a/+/c", "a//c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := Match(filter, topic)
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		// A topic starting with "$share/" is a valid topic name, but as a filter it means a shared
		// subscription, so it is excluded from the "a topic is its own filter" property.
		if ValidateTopic(topic) == nil && !strings.HasPrefix(topic, "$share/") {
			if !Match(topic, topic) {
				t.Fatalf("valid topic %q does not match itself as a filter", topic)
			}
			if ValidateFilter(topic) != nil {
				t.Fatalf("valid topic %q is not a valid filter", topic)
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"a/b", "#", "a/#/b", "$share/g/a", "\x00", "+a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terr, ferr := ValidateTopic(s), ValidateFilter(s)
		if terr == nil && ferr != nil && !strings.HasPrefix(s, "$share/") {
			t.Fatalf("%q is a valid topic but not a valid filter: %v", s, ferr)
		}
		if terr == nil && strings.ContainsAny(s, "+#") {
			t.Fatalf("topic %q with a wildcard accepted", s)
		}
		if ferr == nil {
			for _, l := range strings.Split(s, "/") {
				if strings.ContainsAny(l, "+#") && l != "+" && l != "#" {
					t.Fatalf("filter %q accepted with level %q", s, l)
				}
			}
		}
	})
}
