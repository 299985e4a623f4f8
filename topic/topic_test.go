package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Each case cites the clause of the MQTT 5 specification (or the Mosquitto behaviour) it checks.
var topicCases = []struct {
	topic string
	ok    bool
	want  string // part of the error
	rule  string
}{
	{"a", true, "", "§4.7.3 a topic name of one level"},
	{"a/b/c", true, "", "§4.7.1.1 levels separated by '/'"},
	{"/", true, "", "§4.7.1.1 zero-length levels"},
	{"a//b", true, "", "§4.7.1.1 zero-length levels"},
	{"$SYS/x", true, "", "§4.7.2 topics starting with '$' are valid names"},
	{"sensors/温度", true, "", "§1.5.4 any other Unicode character"},
	{"emoji/\U0001F600", true, "", "§1.5.4 supplementary planes"},
	{"a\u00a0b", true, "", "U+00A0 is after the C1 range"},
	{"a\ufffdb", true, "", "U+FFFD is a character, not a noncharacter"},
	{"a\ufdcf\ufdf0", true, "", "U+FDCF and U+FDF0 border the noncharacter block"},
	{"a\ufffdb\U0010FFFD", true, "", "U+10FFFD is a private-use character"},
	{" ~", true, "", "U+0020 and U+007E are printable"},
	{strings.Repeat("a", 65535), true, "", "[MQTT-1.5.4-1] at most 65535 bytes"},
	{"", false, "empty topic", "[MQTT-4.7.3-1] at least one character"},
	{strings.Repeat("a", 65536), false, "65536 bytes, the limit is 65535", "[MQTT-1.5.4-1]"},
	{"a/+", false, `wildcard '+' at byte 2`, "[MQTT-3.3.2-2] no wildcards in a topic name"},
	{"a/#", false, `wildcard '#' at byte 2`, "[MQTT-3.3.2-2]"},
	{"a+b", false, "wildcard", "[MQTT-3.3.2-2]"},
	{"a\x00b", false, "NUL character (U+0000) at byte 1", "[MQTT-1.5.4-2]"},
	{"\xff\xfe", false, "not valid UTF-8 (byte 0)", "[MQTT-1.5.4-1] well-formed UTF-8"},
	{"a\xed\xa0\x80", false, "not valid UTF-8 (byte 1)", "[MQTT-1.5.4-1] no UTF-16 surrogates (U+D800)"},
	{"\xc0\xaf", false, "not valid UTF-8", "[MQTT-1.5.4-1] no overlong encodings"},
	{"a\x01b", false, `topic "a\x01b" contains control character U+0001 at byte 1`, "§1.5.4 control characters U+0001..U+001F"},
	{"a\tb", false, "control character U+0009 at byte 1", "§1.5.4"},
	{"a\nb", false, "control character U+000A", "§1.5.4"},
	{"\x1f", false, "control character U+001F at byte 0", "§1.5.4"},
	{"a\x7f", false, "control character U+007F at byte 1", "§1.5.4 control characters U+007F..U+009F"},
	{"a\u0080", false, "control character U+0080 at byte 1", "§1.5.4"},
	{"ab\u009f", false, "control character U+009F at byte 2", "§1.5.4"},
	{"a\ufdd0", false, "noncharacter U+FDD0 at byte 1", "§1.5.4 noncharacters U+FDD0..U+FDEF"},
	{"a\ufdef", false, "noncharacter U+FDEF", "§1.5.4"},
	{"a\ufffe", false, "noncharacter U+FFFE", "§1.5.4 U+xFFFE"},
	{"a/\uffff", false, "noncharacter U+FFFF at byte 2", "§1.5.4 U+xFFFF"},
	{"\U0001FFFE", false, "noncharacter U+1FFFE", "§1.5.4 supplementary planes"},
	{"x\U0010FFFF", false, "noncharacter U+10FFFF at byte 1", "§1.5.4 the last code point"},
	{"\U000EFFFF", false, "noncharacter U+EFFFF", "§1.5.4"},
}

func TestValidate(t *testing.T) {
	for _, tc := range topicCases {
		err := Validate(tc.topic)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate(%.30q) = %v, want ok=%v", tc.rule, tc.topic, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrInvalid", tc.rule, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate(%.30q) = %q, want it to say %q", tc.rule, tc.topic, err, tc.want)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		ok     bool
		want   string
		rule   string
	}{
		{"#", true, "", "[MQTT-4.7.1-1] '#' alone"},
		{"+", true, "", "[MQTT-4.7.1-2] '+' alone"},
		{"a/#", true, "", "[MQTT-4.7.1-1]"},
		{"a/+/c", true, "", "[MQTT-4.7.1-2]"},
		{"+/+", true, "", "[MQTT-4.7.1-2] several single-level wildcards"},
		{"/+", true, "", "[MQTT-4.7.1-2]"},
		{"a/b", true, "", "§4.7 a filter without wildcards"},
		{"$share/g/a/#", true, "", "[MQTT-4.8.2-1]"},
		{"$share/g/#", true, "", "[MQTT-4.8.2-1]"},
		{"sensors/温度/+", true, "", "§1.5.4"},
		{"", false, "empty filter", "[MQTT-4.7.3-1]"},
		{"a/#/c", false, "'#' must be the whole last level", "[MQTT-4.7.1-1]"},
		{"a#", false, "'#' must be the whole last level", "[MQTT-4.7.1-1]"},
		{"a/b#", false, `level "b#" mixes '#'`, "[MQTT-4.7.1-1]"},
		{"a+/b", false, "'+' must be a whole level", "[MQTT-4.7.1-2]"},
		{"#/a", false, "before the last level", "[MQTT-4.7.1-1]"},
		{"a\x00", false, "NUL", "[MQTT-1.5.4-2]"},
		{"\xc3\x28", false, "not valid UTF-8", "[MQTT-1.5.4-1]"},
		{"a/\x02/#", false, `filter "a/\x02/#" contains control character U+0002 at byte 2`, "§1.5.4"},
		{"+/\u0085", false, "control character U+0085", "§1.5.4"},
		{"\ufdd5/#", false, "noncharacter U+FDD5 at byte 0", "§1.5.4"},
		{"a/\U0002FFFF", false, "noncharacter U+2FFFF", "§1.5.4"},
		{"$share/g\x01/a", false, "control character U+0001", "§1.5.4 applies to the share name too"},
		{"$share/g", false, "$share/{name}/{filter}", "[MQTT-4.8.2-1]"},
		{"$share//a", false, "empty share name", "[MQTT-4.8.2-1]"},
		{"$share/g+/a", false, "wildcards", "[MQTT-4.8.2-2]"},
		{"$share/g/", false, "$share/{name}/{filter}", "[MQTT-4.8.2-1]"},
		{"$share/g/a#", false, "'#'", "[MQTT-4.7.1-1]"},
		{strings.Repeat("+/", 32767) + "#", true, "", "[MQTT-1.5.4-1] 65535 bytes"},
	} {
		err := ValidateFilter(tc.filter)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateFilter(%.30q) = %v, want ok=%v", tc.rule, tc.filter, err, tc.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: ValidateFilter(%.30q) = %q, want ErrInvalid saying %q", tc.rule, tc.filter, err, tc.want)
		}
	}
	// Every topic rule about characters holds for filters as well.
	for _, tc := range topicCases {
		if strings.ContainsAny(tc.topic, "+#") {
			continue
		}
		if err := ValidateFilter(tc.topic); (err == nil) != tc.ok {
			t.Errorf("%s: ValidateFilter(%.30q) = %v, want ok=%v", tc.rule, tc.topic, err, tc.ok)
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
		{"#", "a\x01b", false},     // §1.5.4: a topic with a control character is invalid, so it never matches
		{"a/+", "a/\uffff", false}, // nor one with a noncharacter
		{"a\u0085/#", "a\u0085/b", false},
		{"温度/+", "温度/x", true},
	} {
		if got := Match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// refMatch is an independent, level-slice implementation used as the oracle in FuzzMatch.
func refMatch(filter, topic string) bool {
	if ValidateFilter(filter) != nil || Validate(topic) != nil {
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

// refChars is an independent statement of the character rules of §1.5.4: true when every rune is
// allowed in a topic name or filter.
func refChars(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r <= 0x1f, r >= 0x7f && r <= 0x9f: // C0 (with NUL), DEL and C1
			return false
		case r >= 0xfdd0 && r <= 0xfdef:
			return false
		case r%0x10000 == 0xfffe || r%0x10000 == 0xffff:
			return false
		}
	}
	return true
}

// seeds holds one string of each class the rules care about, for the fuzz corpora.
var seeds = []string{
	"a/b", "#", "+", "a/#/b", "$share/g/a", "$SYS/x", "\x00", "+a", "a//b", "/",
	"a\x01b", "a\x1fb", "a\x7fb", "a\u0080b", "a\u009fb", "a\u00a0b",
	"a\ufdd0b", "a\ufdefb", "a\ufffeb", "a\uffffb", "a\U0001fffeb", "a\U0010ffffb", "a\ufffdb",
	"\xed\xa0\x80", "\xc0\xaf", "温度/+", "$share/g\x01/#",
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a"}, {"+/+", "/x"}, {"#", "$SYS"}, {"$share/g/+", "x"}, {"a/+/c", "a//c"},
		{"#", "a\x01b"}, {"a/+", "a/\uffff"}, {"+", "\u0085"}, {"a/\ufdd0", "a/\ufdd0"}} {
		f.Add(s[0], s[1])
	}
	for _, s := range seeds {
		f.Add(s, s)
		f.Add("#", s)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := Match(filter, topic)
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		if got && (Validate(topic) != nil || ValidateFilter(filter) != nil || !refChars(topic) || !refChars(filter)) {
			t.Fatalf("Match(%q, %q) is true for an invalid input", filter, topic)
		}
		if Validate(topic) != nil {
			return
		}
		if !strings.HasPrefix(topic, "$") && !Match("#", topic) {
			t.Fatalf("valid topic %q does not match \"#\"", topic)
		}
		// A topic starting with "$share/" is a valid topic name, but as a filter it means a shared
		// subscription, so it is excluded from the "a topic is its own filter" property.
		if !strings.HasPrefix(topic, "$share/") {
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
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terr, ferr := Validate(s), ValidateFilter(s)
		for _, err := range []error{terr, ferr} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
		}
		if terr == nil && ferr != nil && !strings.HasPrefix(s, "$share/") {
			t.Fatalf("%q is a valid topic but not a valid filter: %v", s, ferr)
		}
		if terr == nil && strings.ContainsAny(s, "+#") {
			t.Fatalf("topic %q with a wildcard accepted", s)
		}
		okChars := refChars(s) && s != "" && len(s) <= MaxLen
		if terr == nil && !okChars || ferr == nil && !okChars {
			t.Fatalf("%q accepted (topic: %v, filter: %v) though its characters break §1.5.4", s, terr, ferr)
		}
		if okChars && !strings.ContainsAny(s, "+#") && terr != nil {
			t.Fatalf("%q refused as a topic: %v", s, terr)
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

func BenchmarkValidate(b *testing.B) {
	t := "factory/line-7/press/温度/reading"
	for b.Loop() {
		if Validate(t) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	for b.Loop() {
		if !Match("factory/+/press/#", "factory/line-7/press/温度/reading") {
			b.Fatal("no match")
		}
	}
}
