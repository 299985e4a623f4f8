package topic

import (
	"fmt"
	"strings"
)

// Limits are a broker's bounds on topic names and filters beyond the rules of MQTT (AWS IoT Core:
// 256 bytes and 8 levels, that is 7 slashes). The zero Limits adds none: MaxLen bytes, any number
// of levels. config resolves them from the broker's provider.
type Limits struct {
	MaxBytes  int // longest topic or filter in bytes; 0 = MaxLen
	MaxLevels int // most levels ('/' count + 1); 0 = no limit
}

// Bytes returns the longest topic or filter l allows, in bytes.
func (l Limits) Bytes() int {
	if l.MaxBytes > 0 {
		return min(l.MaxBytes, MaxLen)
	}
	return MaxLen
}

// Validate checks a topic name with the package's Validate and then against l.
func (l Limits) Validate(topic string) error {
	if err := Validate(topic); err != nil {
		return err
	}
	return l.check("topic", topic)
}

// ParseFilter parses a subscription filter with the package's ParseFilter and checks it against l.
func (l Limits) ParseFilter(filter string) (Filter, error) {
	f, err := ParseFilter(filter)
	if err != nil {
		return Filter{}, err
	}
	if err := l.check("filter", filter); err != nil {
		return Filter{}, err
	}
	return f, nil
}

func (l Limits) check(what, s string) error {
	if len(s) > l.Bytes() {
		return fmt.Errorf("%s is %d bytes, over the limit of %d", what, len(s), l.Bytes())
	}
	if l.MaxLevels > 0 {
		if n := strings.Count(s, "/"); n >= l.MaxLevels {
			return fmt.Errorf("%s has %d slashes, over the limit of %d", what, n, l.MaxLevels-1)
		}
	}
	return nil
}
