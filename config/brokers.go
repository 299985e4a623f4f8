package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/edge-agent/edge-agent/topic"
)

// MaxBrokers is the most brokers a file may configure ([[broker]] entries).
const MaxBrokers = 16

// brokerName is what a broker's name may be: it appears in the API (?broker=NAME), in metrics
// labels and in the queue's keys.
var brokerName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// BrokerNamed returns the broker of c.Brokers with that name, or nil.
func (c *Config) BrokerNamed(name string) *Broker {
	for i := range c.Brokers {
		if c.Brokers[i].Name == name {
			return &c.Brokers[i]
		}
	}
	return nil
}

// Routes reports whether a message published on topicName goes to b: b's publish filters are
// empty (every topic) or one of them matches. A Broker from Parse or Load has its filters parsed
// once; one built otherwise parses them on each call.
func (b *Broker) Routes(topicName string) bool {
	if len(b.Publish) == 0 {
		return true
	}
	if len(b.routes) == len(b.Publish) {
		return topic.MatchAny(b.routes, topicName)
	}
	for _, f := range b.Publish {
		if flt, err := topic.ParseFilter(f); err == nil && flt.Match(topicName) {
			return true
		}
	}
	return false
}

// UsesCognito reports whether b gets its AWS credentials from a Cognito identity pool: provider
// aws-iot with [broker.cognito] (the single [broker] form: [cognito]). Config.HasCognito says
// whether the file has the table at all, for Brokers[0].
func (b *Broker) UsesCognito() bool {
	return b.Provider == ProviderAWSIoT && b.Cognito.IdentityPoolID != ""
}

// brokerNames checks each broker's name (required with several brokers; else default
// DefaultBrokerName) and that names are unique.
func (v *checker) brokerNames() {
	bs := v.c.Brokers
	seen := make(map[string]int, len(bs))
	for i := range bs {
		b, key := &bs[i], v.ix.brokerKey(i)+".name"
		switch {
		case !v.ix.hasPath(key) && len(bs) > 1:
			v.bad(key, "missing: with several brokers each [[broker]] needs a name (1 to 32 of A-Z a-z 0-9 _ -)")
			continue
		case !v.ix.hasPath(key):
			b.Name = DefaultBrokerName
		case !brokerName.MatchString(b.Name):
			v.bad(key, "%q: a name is 1 to 32 of A-Z a-z 0-9 _ -", b.Name)
			continue
		}
		if j, dup := seen[b.Name]; dup {
			v.bad(key, "%q is also the name of %s: names must be unique", b.Name, v.ix.brokerKey(j))
			continue
		}
		seen[b.Name] = i
	}
}

// nameList lists the brokers' names for a message: `"aws", "plant"`.
func (v *checker) nameList() string {
	names := make([]string, len(v.c.Brokers))
	for i, b := range v.c.Brokers {
		names[i] = fmt.Sprintf("%q", b.Name)
	}
	return strings.Join(names, ", ")
}

// publish checks the broker's publish filters against its provider's topic limits and keeps them
// parsed for Routes.
func (v *checker) publish() {
	b := v.b
	b.routes = nil
	for j, f := range b.Publish {
		flt, err := v.lim.Topic.ParseFilter(f)
		if err != nil {
			v.bad(fmt.Sprintf("%s.publish[%d]", v.key, j), "%q: %v", f, err)
			continue
		}
		b.routes = append(b.routes, flt)
	}
}

// sameConnection refuses two brokers with the same url and client_id: the broker would take each
// connection for the other's reconnect and close it, over and over.
func (v *checker) sameConnection() {
	bs := v.c.Brokers
	for j := 1; j < len(bs); j++ {
		for i := range j {
			if bs[j].URL != "" && bs[j].URL == bs[i].URL && bs[j].ClientID == bs[i].ClientID {
				v.bad(v.ix.brokerKey(j)+".url", "broker %q has the url and client_id (%q) of broker %q: the broker would disconnect one "+
					"for the other; give one of them its own client_id", bs[j].Name, bs[j].ClientID, bs[i].Name)
				break
			}
		}
	}
}
