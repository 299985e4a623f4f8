package localapi

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/topic"
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
	who       string         // for messages: "user alice", "gid 100", …
	uid, gid  int64          // -1 when unset
	publish   []topic.Filter // parsed once, here
	subscribe []topic.Filter
}

func newAccessPolicy(entries []config.Access) (*accessPolicy, error) {
	p := &accessPolicy{ownUID: uint32(os.Getuid()), ownGID: uint32(os.Getgid())}
	for i, e := range entries {
		r := accessRule{uid: -1, gid: -1}
		var err error
		if r.publish, err = topic.ParseFilters(e.Publish); err != nil {
			return nil, fmt.Errorf("localapi: access[%d].publish: %w", i, err)
		}
		if r.subscribe, err = topic.ParseFilters(e.Subscribe); err != nil {
			return nil, fmt.Errorf("localapi: access[%d].subscribe: %w", i, err)
		}
		switch {
		case e.User != "":
			u, err := user.Lookup(e.User)
			if err != nil {
				return nil, fmt.Errorf("localapi: access[%d].user %q: %w", i, e.User, err)
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
				return nil, fmt.Errorf("localapi: access[%d].group %q: %w", i, e.Group, err)
			}
			id, _ := strconv.ParseInt(g.Gid, 10, 64)
			r.gid, r.who = id, "group "+e.Group
		default:
			return nil, fmt.Errorf("localapi: access[%d] names no user, uid, gid or group", i)
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

// needsGroups reports whether decisions read the caller's groups: only with rules.
func (p *accessPolicy) needsGroups() bool { return len(p.rules) > 0 }

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
	return slices.Contains(c.groups, p.ownGID)
}

func (p *accessPolicy) rulesFor(c peer) []accessRule {
	var out []accessRule
	for _, r := range p.rules {
		if r.uid >= 0 && int64(c.uid) == r.uid {
			out = append(out, r)
			continue
		}
		if r.gid >= 0 && slices.Contains(c.groups, uint32(r.gid)) {
			out = append(out, r)
		}
	}
	return out
}

// canPublish returns nil if c may publish to topic.
func (p *accessPolicy) canPublish(c peer, name string) error {
	if p.trusted(c) {
		return nil
	}
	for _, r := range p.rulesFor(c) {
		if topic.MatchAny(r.publish, name) {
			return nil
		}
	}
	return fmt.Errorf("%w: uid %d may not publish to %q (see [[access]] in the config)", errForbidden, c.uid, name)
}

// canSubscribe returns nil if every message filter could match is allowed to c.
func (p *accessPolicy) canSubscribe(c peer, filter string) error {
	if p.trusted(c) {
		return nil
	}
	want, err := topic.ParseFilter(filter)
	if err != nil {
		return fmt.Errorf("%w: %w", errForbidden, err)
	}
	for _, r := range p.rulesFor(c) {
		for _, f := range r.subscribe {
			if f.Covers(want) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: uid %d may not subscribe to %q (see [[access]] in the config)", errForbidden, c.uid, filter)
}
