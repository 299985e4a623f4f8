package topic

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter("$share/g/a/+")
	if err != nil || f.String() != "$share/g/a/+" || !f.Match("a/b") || f.Match("g/a/b") {
		t.Fatalf("ParseFilter($share/g/a/+) = %v, %v", f, err)
	}
	if _, err := ParseFilter("a/#/b"); err == nil {
		t.Fatal("ParseFilter(a/#/b) accepted")
	}
	var zero Filter
	if zero.Match("a") || zero.Covers(f) || f.Covers(zero) {
		t.Fatal("the zero Filter matches or covers")
	}
	fs, err := ParseFilters([]string{"a/+", "b/#"})
	if err != nil || !MatchAny(fs, "b") || MatchAny(fs, "a/b/c") {
		t.Fatalf("ParseFilters = %v, %v", fs, err)
	}
	if _, err := ParseFilters([]string{"a", "a+"}); err == nil {
		t.Fatal("ParseFilters accepted a+")
	}
}

// Covers decides whether an [[access]] rule's subscribe filter allows a requested filter.
func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		allowed, filter string
		want            bool
	}{
		{"#", "a/b", true},
		{"#", "#", true},
		{"a/#", "a", true},
		{"a/#", "a/+/c", true},
		{"a/#", "a/#", true},
		{"a/#", "b/#", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false}, // '+' in the request could reach a/c
		{"a/b", "a", false},
		{"a/b/c", "a/b", false},
		{"+/b", "x/b", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/#", "$share/g/a/b", false}, // a shared subscription needs a rule naming the share
		{"$share/g/#", "$share/g/a/b", true},
		{"$share/h/#", "$share/g/a/b", false},
	} {
		a, err1 := ParseFilter(tc.allowed)
		f, err2 := ParseFilter(tc.filter)
		if err1 != nil || err2 != nil {
			t.Fatalf("%q, %q: %v %v", tc.allowed, tc.filter, err1, err2)
		}
		if got := a.Covers(f); got != tc.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", tc.allowed, tc.filter, got, tc.want)
		}
	}
}

// A filter that covers another matches every topic the other matches (checked on a sample).
func FuzzCovers(f *testing.F) {
	for _, s := range [][3]string{{"a/#", "a/+", "a/b"}, {"+/b", "x/b", "x/b"}, {"#", "$SYS/x", "$SYS/x"}, {"a/+", "a/#", "a"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, allowed, filter, topic string) {
		a, err1 := ParseFilter(allowed)
		g, err2 := ParseFilter(filter)
		if err1 != nil || err2 != nil || g.from != 0 || a.from != 0 {
			return
		}
		if a.Covers(g) && g.Match(topic) && !a.Match(topic) {
			t.Fatalf("%q covers %q, and %q matches %q but not %q", allowed, filter, topic, filter, allowed)
		}
	})
}

func TestLimits(t *testing.T) {
	aws := Limits{MaxBytes: 256, MaxLevels: 8}
	for _, tc := range []struct {
		topic string
		want  string
	}{
		{"a/b/c/d/e/f/g/h", ""},
		{"a/b/c/d/e/f/g/h/i", "topic has 8 slashes, over the limit of 7"},
		{strings.Repeat("x", 256), ""},
		{strings.Repeat("x", 257), "topic is 257 bytes, over the limit of 256"},
		{"a/+", "wildcard"},
	} {
		err := aws.Validate(tc.topic)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%.20q) = %v, want %q", tc.topic, err, tc.want)
		}
	}
	if _, err := aws.ParseFilter("a/b/c/d/e/f/g/h/#"); err == nil || err.Error() != "filter has 8 slashes, over the limit of 7" {
		t.Errorf("ParseFilter with 9 levels: %v", err)
	}
	if _, err := aws.ParseFilter("a/#/b"); err == nil {
		t.Error("ParseFilter(a/#/b) accepted")
	}
	if aws.Bytes() != 256 || (Limits{}).Bytes() != MaxLen {
		t.Errorf("Bytes: %d, %d", aws.Bytes(), Limits{}.Bytes())
	}
	if err := (Limits{}).Validate(strings.Repeat("a/", 1000) + "a"); err != nil {
		t.Errorf("zero Limits: %v", err)
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	f, _ := ParseFilter("factory/+/press/#")
	for b.Loop() {
		if !f.Match("factory/line-7/press/温度/reading") {
			b.Fatal("no match")
		}
	}
}
