package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Host is where client_id templates come from; a zero field reads the machine. Templates make one
// config file serve a whole fleet: client_id = "gw-{machine_id}" gives every device its own id.
//
//	{hostname}    the host name
//	{machine_id}  the first line of /etc/machine-id (systemd's per-install id, 32 hex digits)
//	{env:NAME}    the environment variable NAME (from the unit's Environment= or EnvironmentFile=)
//
// Expansion happens once, at load; an unknown placeholder, an unclosed '{' or a placeholder that
// expands to nothing is an error naming client_id and its line. The provider's limits (AWS IoT:
// 128 bytes, no leading '$') apply to the expanded id.
type Host struct {
	Hostname      func() (string, error) // default os.Hostname
	MachineIDFile string                 // default DefaultMachineIDFile
	Getenv        func(string) string    // default os.Getenv
}

// DefaultMachineIDFile is where {machine_id} is read from.
const DefaultMachineIDFile = "/etc/machine-id"

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces the placeholders of a client_id template.
func (h Host) expand(tmpl string) (string, error) {
	if !strings.ContainsAny(tmpl, "{}") {
		return tmpl, nil
	}
	var b strings.Builder
	rest := tmpl
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		if rest[i] == '}' {
			return "", fmt.Errorf("%q: a '}' without its '{'; placeholders are {hostname}, {machine_id} and {env:NAME}", tmpl)
		}
		b.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("%q: a '{' without its '}'; placeholders are {hostname}, {machine_id} and {env:NAME}", tmpl)
		}
		ph := rest[i : i+j+1]
		val, err := h.value(ph)
		if err != nil {
			return "", fmt.Errorf("%q: %w", tmpl, err)
		}
		if val == "" {
			return "", fmt.Errorf("%q: %s expands to nothing", tmpl, ph)
		}
		b.WriteString(val)
		rest = rest[i+j+1:]
	}
}

// value is what one placeholder ("{hostname}") stands for.
func (h Host) value(ph string) (string, error) {
	name := ph[1 : len(ph)-1]
	switch {
	case name == "hostname":
		hostname := h.Hostname
		if hostname == nil {
			hostname = os.Hostname
		}
		s, err := hostname()
		if err != nil {
			return "", fmt.Errorf("{hostname}: %w", err)
		}
		return s, nil
	case name == "machine_id":
		path := h.MachineIDFile
		if path == "" {
			path = DefaultMachineIDFile
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("{machine_id}: %w (systemd-machine-id-setup creates it)", err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		id := strings.TrimSpace(first)
		if id == "" {
			return "", fmt.Errorf("{machine_id}: %s is empty (systemd-machine-id-setup fills it)", path)
		}
		return id, nil
	case strings.HasPrefix(name, "env:"):
		v := strings.TrimPrefix(name, "env:")
		if !envName.MatchString(v) {
			return "", fmt.Errorf("%s: %q is not an environment variable name", ph, v)
		}
		getenv := h.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		val := getenv(v)
		if val == "" {
			return "", fmt.Errorf("%s: the environment variable %s is empty or unset (set it in the unit's Environment=)", ph, v)
		}
		return val, nil
	default:
		return "", fmt.Errorf("unknown placeholder %s: use {hostname}, {machine_id} or {env:NAME}", ph)
	}
}
