package sigv4

import (
	"net"
	"strings"
)

// RegionFromHost extracts the region from an AWS IoT Core endpoint host
// name: "<prefix>.iot.<region>.amazonaws.com" or
// "<prefix>.iot.<region>.amazonaws.com.cn" (China). A port (host:port), a
// trailing dot and upper case are tolerated. It reports false for anything
// else, including a custom domain: then the region must be configured.
func RegionFromHost(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var rest string
	switch {
	case strings.HasSuffix(host, ".amazonaws.com"):
		rest = strings.TrimSuffix(host, ".amazonaws.com")
	case strings.HasSuffix(host, ".amazonaws.com.cn"):
		rest = strings.TrimSuffix(host, ".amazonaws.com.cn")
	default:
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", false
	}
	region, rest := rest[i+1:], rest[:i]
	prefix, ok := strings.CutSuffix(rest, ".iot")
	if !ok || prefix == "" || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") || strings.Contains(prefix, "..") {
		return "", false
	}
	for _, l := range strings.Split(prefix, ".") {
		if !validLabel(l) {
			return "", false
		}
	}
	if !validRegion(region) {
		return "", false
	}
	return region, true
}

// validRegion accepts AWS region names: lower-case letters in at least two
// dash-separated words and a trailing number, e.g. eu-west-1, us-gov-west-1,
// cn-north-1, ap-southeast-4, il-central-1.
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(r) > 32 || len(parts) < 3 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		last := i == len(parts)-1
		for j := 0; j < len(p); j++ {
			c := p[j]
			if last && !('0' <= c && c <= '9') || !last && !('a' <= c && c <= 'z') {
				return false
			}
		}
	}
	return true
}

// validLabel reports whether l is a DNS label: 1–63 of a-z 0-9 -, not
// starting or ending with '-'.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
