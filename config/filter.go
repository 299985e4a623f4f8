package config

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// checkFilter applies the MQTT topic filter rules [MQTT-4.7.1]: non-empty,
// valid UTF-8 without NUL, at most 65535 bytes, '#' only as the whole last
// level, '+' only as a whole level. (The transport package has the
// authoritative helpers; config keeps its own copy so it imports nothing
// of the agent.)
func checkFilter(f string) error {
	switch {
	case f == "":
		return errors.New("empty topic filter")
	case len(f) > 65535:
		return errors.New("topic filter longer than 65535 bytes")
	case !utf8.ValidString(f):
		return errors.New("topic filter is not valid UTF-8")
	case strings.ContainsRune(f, 0):
		return errors.New("topic filter contains a NUL character")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New(`'#' must be the whole last level of a topic filter ("a/#", not "a/b#" or "a/#/b")`)
		}
		if strings.Contains(l, "+") && l != "+" {
			return errors.New(`'+' must be a whole level of a topic filter ("a/+/c", not "a/b+")`)
		}
	}
	return nil
}
