package transport

import "github.com/edge-agent/edge-agent/topic"

// The topic rules live in package topic (one home); these names keep the transport's API.

// maxTopicLen is the longest UTF-8 encoded string MQTT can carry [MQTT-1.5.4-1].
const maxTopicLen = topic.MaxLen

// ErrInvalidTopic is wrapped by ValidateTopic and ValidateFilter errors; it is topic.ErrInvalid.
var ErrInvalidTopic = topic.ErrInvalid

// ValidateTopic checks a topic name used in a PUBLISH; see topic.Validate.
func ValidateTopic(t string) error { return topic.Validate(t) }

// ValidateFilter checks a subscription topic filter; see topic.ValidateFilter.
func ValidateFilter(filter string) error { return topic.ValidateFilter(filter) }

// Match reports whether topic t matches the subscription filter; see topic.Match.
func Match(filter, t string) bool { return topic.Match(filter, t) }
