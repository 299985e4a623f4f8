// Package awsregion holds the rules for AWS region names, written once for the config check, the
// signer and the provider: what a region name looks like, and how the region is read from an AWS IoT
// Core endpoint host. It imports only the standard library; every function is pure and safe for
// concurrent use.
package awsregion

import (
	"net"
	"strings"
)

// FromHost extracts the region from an AWS IoT Core endpoint host
// name: "<prefix>.iot.<region>.amazonaws.com" or
// "<prefix>.iot.<region>.amazonaws.com.cn" (China). A port (host:port), a
// trailing dot and upper case are tolerated. It reports false for anything
// else, including a custom domain: then the region must be configured.
func FromHost(host string) (string, bool) {
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
	if !Valid(region) {
		return "", false
	}
	return region, true
}

// Valid reports whether r is an AWS region name: lower-case letters in at
// least two dash-separated words and a trailing number, at most 32 bytes,
// e.g. eu-west-1, us-gov-west-1, cn-north-1, ap-southeast-4, il-central-1.
func Valid(r string) bool {
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

// FromID returns the region of an id of the "<region>:<uuid>" form that
// Cognito identity pool ids and identity ids share (e.g.
// "eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd"). It reports false for
// anything else.
func FromID(s string) (region string, ok bool) {
	region, id, found := strings.Cut(s, ":")
	if !found || !Valid(region) || !validUUID(id) {
		return "", false
	}
	return region, true
}

// validUUID accepts the 8-4-4-4-12 hex form (either case).
func validUUID(u string) bool {
	if len(u) != 36 {
		return false
	}
	for i, c := range u {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
