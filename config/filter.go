package config

import "github.com/edge-agent/edge-agent/topic"

// checkFilter applies the MQTT topic filter rules of package topic (the one home of topic syntax):
// non-empty, well-formed UTF-8 without NUL, control characters or noncharacters, at most 65535
// bytes, '#' only as the whole last level, '+' only as a whole level.
func checkFilter(f string) error { return topic.ValidateFilter(f) }
