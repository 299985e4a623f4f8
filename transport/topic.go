package transport

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicLen is the longest UTF-8 encoded string MQTT can carry (a two-byte length prefix) [MQTT-1.5.4-1].
const maxTopicLen = 65535

// ErrInvalidTopic is wrapped by ValidateTopic and ValidateFilter errors.
var ErrInvalidTopic = errors.New("invalid MQTT topic")

// ValidateTopic checks a topic name used in a PUBLISH: non-empty [MQTT-4.7.3-1], valid UTF-8 without
// U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2], no wildcard characters [MQTT-3.3.2-2], at most 65535 bytes.
func ValidateTopic(topic string) error {
	if err := validateString("topic", topic); err != nil {
		return err
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return fmt.Errorf("%w: topic %q contains wildcard %q at byte %d; wildcards are only allowed in subscription filters",
			ErrInvalidTopic, topic, topic[i], i)
	}
	return nil
}

// ValidateFilter checks a subscription topic filter: the ValidateTopic string rules, '#' only as the whole
// last level [MQTT-4.7.1-1], '+' only as a whole level [MQTT-4.7.1-2], and for a shared subscription
// ("$share/{name}/{filter}") a non-empty share name without wildcards or '/' followed by a valid filter
// [MQTT-4.8.2-1] [MQTT-4.8.2-2].
func ValidateFilter(filter string) error {
	if err := validateString("filter", filter); err != nil {
		return err
	}
	f := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		name, inner, found := strings.Cut(rest, "/")
		switch {
		case !found || inner == "":
			return fmt.Errorf("%w: shared subscription %q needs the form $share/{name}/{filter}", ErrInvalidTopic, filter)
		case name == "" || strings.ContainsAny(name, "+#"):
			return fmt.Errorf("%w: shared subscription %q has an empty share name or one with wildcards", ErrInvalidTopic, filter)
		}
		f = inner
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("%w: filter %q has '#' before the last level; '#' must be last", ErrInvalidTopic, filter)
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("%w: filter %q level %q mixes a wildcard with other characters; '+' and '#' must be a whole level",
				ErrInvalidTopic, filter, l)
		}
	}
	return nil
}

func validateString(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidTopic, what)
	case len(s) > maxTopicLen:
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrInvalidTopic, what, len(s), maxTopicLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidTopic, what, s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s %q contains a NUL character", ErrInvalidTopic, what, s)
	}
	return nil
}

// Match reports whether topic matches the subscription filter with MQTT semantics: '+' matches exactly
// one level, '#' matches the parent level and any number of child levels [MQTT-4.7.1-2], and a filter
// starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]. For a shared
// subscription the part after "$share/{name}/" is matched. Invalid filters or topics never match.
func Match(filter, topic string) bool {
	if ValidateFilter(filter) != nil || ValidateTopic(topic) != nil {
		return false
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		switch {
		case fl == "#":
			return true
		case fl != "+" && fl != tl:
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// Topic ended; "a/#" still matches "a" [MQTT-4.7.1-2].
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
