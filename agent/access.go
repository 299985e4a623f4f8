package agent

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/config"
	topicrules "github.com/edge-agent/edge-agent/topic"
)

// accessPolicy decides who may publish to and subscribe from the local API.
//
// Without [[access]] rules the socket is mode 0660: whoever can open it (root, the agent's user, the
// socket's group) may do everything. With rules the socket is 0666 and each request is checked
// against the caller's SO_PEERCRED identity: root, the agent's own user and members of the agent's
// group may do everything; anyone else only what a rule naming them allows.
type accessPolicy struct {
	rules  []accessRule
	ownUID uint32
	ownGID uint32
}

type accessRule struct {
	who       string // for messages: "user alice", "gid 100", …
	uid, gid  int64  // -1 when unset
	publish   []string
	subscribe []string
}

func newAccessPolicy(entries []config.Access) (*accessPolicy, error) {
	p := &accessPolicy{ownUID: uint32(os.Getuid()), ownGID: uint32(os.Getgid())}
	for i, e := range entries {
		r := accessRule{uid: -1, gid: -1, publish: e.Publish, subscribe: e.Subscribe}
		switch {
		case e.User != "":
			u, err := user.Lookup(e.User)
			if err != nil {
				return nil, fmt.Errorf("agent: access[%d].user %q: %w", i, e.User, err)
			}
			id, _ := strconv.ParseInt(u.Uid, 10, 64)
			r.uid, r.who = id, "user "+e.User
		case e.UID != nil:
			r.uid, r.who = int64(*e.UID), fmt.Sprintf("uid %d", *e.UID)
		case e.GID != nil:
			r.gid, r.who = int64(*e.GID), fmt.Sprintf("gid %d", *e.GID)
		case e.Group != "":
			g, err := user.LookupGroup(e.Group)
			if err != nil {
				return nil, fmt.Errorf("agent: access[%d].group %q: %w", i, e.Group, err)
			}
			id, _ := strconv.ParseInt(g.Gid, 10, 64)
			r.gid, r.who = id, "group "+e.Group
		default:
			return nil, fmt.Errorf("agent: access[%d] names no user, uid, gid or group", i)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func (p *accessPolicy) socketMode() os.FileMode {
	if len(p.rules) == 0 {
		return 0o660
	}
	return 0o666
}

// trusted reports whether the caller may do everything.
func (p *accessPolicy) trusted(c peer) bool {
	if len(p.rules) == 0 {
		return true // file permissions (0660) already decided who could connect
	}
	if !c.known {
		return false
	}
	if c.uid == 0 || c.uid == p.ownUID {
		return true
	}
	return slices.Contains(c.groups(), p.ownGID)
}

func (p *accessPolicy) rulesFor(c peer) []accessRule {
	var out []accessRule
	var groups []uint32
	for _, r := range p.rules {
		if r.uid >= 0 && int64(c.uid) == r.uid {
			out = append(out, r)
			continue
		}
		if r.gid >= 0 {
			if groups == nil {
				groups = c.groups()
			}
			if slices.Contains(groups, uint32(r.gid)) {
				out = append(out, r)
			}
		}
	}
	return out
}

// canPublish returns nil if c may publish to topic.
func (p *accessPolicy) canPublish(c peer, topic string) error {
	if p.trusted(c) {
		return nil
	}
	for _, r := range p.rulesFor(c) {
		for _, f := range r.publish {
			if topicrules.Match(f, topic) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: uid %d may not publish to %q (see [[access]] in the config)", errForbidden, c.uid, topic)
}

// canSubscribe returns nil if every message filter could match is allowed to c.
func (p *accessPolicy) canSubscribe(c peer, filter string) error {
	if p.trusted(c) {
		return nil
	}
	for _, r := range p.rulesFor(c) {
		for _, f := range r.subscribe {
			if covers(f, filter) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: uid %d may not subscribe to %q (see [[access]] in the config)", errForbidden, c.uid, filter)
}

// covers reports whether every topic matched by filter is also matched by allowed.
func covers(allowed, filter string) bool {
	a := strings.Split(allowed, "/")
	f := strings.Split(filter, "/")
	if strings.HasPrefix(filter, "$") && (a[0] == "#" || a[0] == "+") {
		return false // [MQTT-4.7.2-1]: wildcards at the first level never match $-topics
	}
	for i, al := range a {
		if al == "#" {
			return true
		}
		if i >= len(f) {
			return false
		}
		switch {
		case f[i] == "#":
			return false
		case al == "+":
			// any single level, including a '+' in filter
		case al != f[i] || f[i] == "+":
			return false
		}
	}
	return len(a) == len(f)
}
