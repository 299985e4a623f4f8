package topic

import "strings"

// Filter is a subscription topic filter that passed ValidateFilter, split into its levels once so
// that matching it against many topics splits only the topic. The zero Filter matches nothing.
type Filter struct {
	s      string
	levels []string // every level of s, "$share" and the share name included
	from   int      // first level that is matched against topics: 2 for "$share/{name}/…", else 0
}

// ParseFilter checks filter with ValidateFilter and returns it parsed.
func ParseFilter(filter string) (Filter, error) {
	if err := ValidateFilter(filter); err != nil {
		return Filter{}, err
	}
	f := Filter{s: filter, levels: strings.Split(filter, "/")}
	if strings.HasPrefix(filter, "$share/") { // as ValidateFilter reads it: "$share" alone is a plain filter
		f.from = 2 // [MQTT-4.8.2-1]: the share name is not part of what is matched
	}
	return f, nil
}

// ParseFilters parses each of filters; the first invalid one is the error.
func ParseFilters(filters []string) ([]Filter, error) {
	out := make([]Filter, len(filters))
	for i, s := range filters {
		f, err := ParseFilter(s)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// String returns the filter as given to ParseFilter.
func (f Filter) String() string { return f.s }

// Match reports whether topic matches f with MQTT semantics: '+' matches exactly one level, '#'
// matches the parent level and any number of child levels [MQTT-4.7.1-2], and a filter starting
// with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]. For a shared
// subscription the part after "$share/{name}/" is matched. A topic that Validate refuses never
// matches, nor does the zero Filter.
func (f Filter) Match(topic string) bool {
	if f.levels == nil || Validate(topic) != nil {
		return false
	}
	fl := f.levels[f.from:]
	if topic[0] == '$' && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, l := range fl {
		if l == "#" {
			return true
		}
		tl, rest, more := strings.Cut(topic, "/")
		if l != "+" && l != tl {
			return false
		}
		switch last := i == len(fl)-1; {
		case last:
			return !more
		case !more:
			// Topic ended; "a/#" still matches "a" [MQTT-4.7.1-2].
			return i == len(fl)-2 && fl[i+1] == "#"
		}
		topic = rest
	}
	return false // not reached: fl is never empty
}

// MatchAny reports whether topic matches any of filters.
func MatchAny(filters []Filter, topic string) bool {
	for _, f := range filters {
		if f.Match(topic) {
			return true
		}
	}
	return false
}

// Covers reports whether every topic that g matches is also matched by f, so that a caller allowed f
// may subscribe to g. It compares the filters level by level as written: a shared subscription
// ("$share/{name}/…") is covered only by a filter naming the same share, never by a plain filter; and a filter starting with a wildcard covers no
// filter starting with '$' [MQTT-4.7.2-1]. The zero Filter covers nothing and is covered by nothing.
func (f Filter) Covers(g Filter) bool {
	a, b := f.levels, g.levels
	if a == nil || b == nil {
		return false
	}
	if strings.HasPrefix(g.s, "$") && (a[0] == "#" || a[0] == "+") {
		return false
	}
	for i, al := range a {
		if al == "#" {
			return true
		}
		if i >= len(b) {
			return false
		}
		switch {
		case b[i] == "#":
			return false
		case al == "+":
			// any single level, including a '+' in g
		case al != b[i] || b[i] == "+":
			return false
		}
	}
	return len(a) == len(b)
}

// Match reports whether topic matches filter (see Filter.Match); an invalid filter matches nothing.
// It parses filter on every call: parse a filter used more than once with ParseFilter.
func Match(filter, topic string) bool {
	f, err := ParseFilter(filter)
	return err == nil && f.Match(topic)
}
