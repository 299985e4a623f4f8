// Package topic holds the MQTT topic rules in one place: the syntax of a topic name (PUBLISH), of a
// topic filter (SUBSCRIBE, access rules, a broker's publish list) and how a filter matches a topic.
// The rules are those of MQTT 5 (§1.5.4 UTF-8 strings, §4.7 topic names and filters, §4.8.2 shared
// subscriptions) as Mosquitto enforces them: a string the broker would refuse is refused here, so
// that it is refused at the local socket instead of wedging the queue (issue 7).
//
// A filter that is matched against many topics (a subscription, an access rule, a broker's publish
// list) is parsed once with ParseFilter; Match and Covers read the parsed levels. Limits adds a
// broker's own bounds (AWS IoT: 256 bytes, 8 levels) to the rules of MQTT.
//
// It imports only the standard library, so that every package of the agent may import it. All
// functions are pure and safe for concurrent use; a Filter is immutable.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest UTF-8 encoded string MQTT can carry: a two-byte length prefix [MQTT-1.5.4-1].
const MaxLen = 65535

// ErrInvalid is wrapped by every Validate and ValidateFilter error.
var ErrInvalid = errors.New("invalid MQTT topic")

// Validate checks a topic name used in a PUBLISH: non-empty [MQTT-4.7.3-1], at most MaxLen bytes,
// well-formed UTF-8 without U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2], without the control characters
// U+0001–U+001F and U+007F–U+009F and without Unicode noncharacters (U+FDD0–U+FDEF, U+nFFFE,
// U+nFFFF) (§1.5.4: "SHOULD NOT include"; Mosquitto refuses them as malformed UTF-8 and closes the
// connection), and without wildcard characters [MQTT-3.3.2-2].
func Validate(topic string) error {
	if err := validateString("topic", topic); err != nil {
		return err
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return fmt.Errorf("%w: topic %q contains wildcard %q at byte %d; wildcards are only allowed in subscription filters",
			ErrInvalid, topic, topic[i], i)
	}
	return nil
}

// ValidateFilter checks a subscription topic filter: the string rules of Validate, '#' only as the
// whole last level [MQTT-4.7.1-1], '+' only as a whole level [MQTT-4.7.1-2], and for a shared
// subscription ("$share/{name}/{filter}") a non-empty share name without wildcards or '/' followed
// by a valid filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
func ValidateFilter(filter string) error {
	if err := validateString("filter", filter); err != nil {
		return err
	}
	f := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		name, inner, found := strings.Cut(rest, "/")
		switch {
		case !found || inner == "":
			return fmt.Errorf("%w: shared subscription %q needs the form $share/{name}/{filter}", ErrInvalid, filter)
		case name == "" || strings.ContainsAny(name, "+#"):
			return fmt.Errorf("%w: shared subscription %q has an empty share name or one with wildcards", ErrInvalid, filter)
		}
		f = inner
	}
	for i := 0; ; i++ {
		l, rest, more := strings.Cut(f, "/")
		switch {
		case l == "#":
			if more {
				return fmt.Errorf("%w: filter %q has '#' before the last level; '#' must be the whole last level (\"a/#\", not \"a/#/b\")",
					ErrInvalid, filter)
			}
		case l == "+":
		case strings.Contains(l, "#"):
			return fmt.Errorf("%w: filter %q level %q mixes '#' with other characters; '#' must be the whole last level (\"a/#\", not \"a/b#\")",
				ErrInvalid, filter, l)
		case strings.Contains(l, "+"):
			return fmt.Errorf("%w: filter %q level %q mixes '+' with other characters; '+' must be a whole level (\"a/+/c\", not \"a/b+\")",
				ErrInvalid, filter, l)
		}
		if !more {
			return nil
		}
		f = rest
	}
}

// validateString applies the rules for an MQTT UTF-8 string that is a topic name or filter.
func validateString(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(s) > MaxLen:
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrInvalid, what, len(s), MaxLen)
	}
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++ // printable ASCII: the common case
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			// [MQTT-1.5.4-1]: ill-formed UTF-8, including UTF-16 surrogates (U+D800–U+DFFF).
			return fmt.Errorf("%w: %s %q is not valid UTF-8 (byte %d)", ErrInvalid, what, s, i)
		case r == 0:
			return fmt.Errorf("%w: %s %q contains a NUL character (U+0000) at byte %d", ErrInvalid, what, s, i) // [MQTT-1.5.4-2]
		case isControl(r):
			return fmt.Errorf("%w: %s %q contains control character %U at byte %d", ErrInvalid, what, s, r, i)
		case isNoncharacter(r):
			return fmt.Errorf("%w: %s %q contains Unicode noncharacter %U at byte %d", ErrInvalid, what, s, r, i)
		}
		i += n
	}
	return nil
}

// isControl reports the control characters of §1.5.4 other than U+0000: C0 and DEL/C1.
func isControl(r rune) bool { return r <= 0x1f || (r >= 0x7f && r <= 0x9f) }

// isNoncharacter reports the 66 Unicode noncharacters: U+FDD0–U+FDEF and the last two code points of
// every plane (U+FFFE, U+FFFF, U+1FFFE, …, U+10FFFF).
func isNoncharacter(r rune) bool { return (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe }
