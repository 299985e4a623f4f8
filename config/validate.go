package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/awsregion"
	"github.com/edge-agent/edge-agent/topic"
)

var (
	knownLevels  = []string{"debug", "info", "warn", "error"}
	knownFormats = []string{"text", "json"}
)

// checker validates one decoded Config: each section of the file has its own method, which reports
// problems with bad (an error) or warn (an adjustment, into Config.Warnings) and fills in the
// defaults that depend on other keys.
type checker struct {
	c    *Config
	ix   *index
	host Host // for client_id templates
	errs []*Error

	// The broker being checked (see at): the broker methods check b, whose keys start with key.
	b     *Broker
	key   string // "broker" or "broker[i]"
	lim   Limits // b's provider's (Broker.Limits)
	aws   bool   // provider aws-iot: its rules beyond Limits (signed wss:// URL, AWS credentials, [cognito])
	topID bool   // the top-level client_id passed the checks that do not depend on a provider
}

// validate checks the decoded configuration, resolves Broker.Limits and the defaults that depend on
// other keys, and collects Warnings. Every error names its key and, where the document has it, the
// line; errors are sorted by line.
//
// Each broker of c.Brokers is checked on its own, with its provider's limits; then c.Broker and
// c.Cognito are set to c.Brokers[0]'s.
func validate(c *Config, ix *index, h Host) error {
	v := &checker{c: c, ix: ix, host: h}
	v.brokerNames()
	v.topClientID()
	for i := range c.Brokers {
		v.at(i)
		v.provider()
		v.clientID()
		v.brokerURL()
		v.brokerAWS()
		v.brokerSession()
		v.brokerBounds()
		v.publish()
		v.cognito()
	}
	v.identity()
	v.sameConnection()
	v.topCognito()
	v.queue()
	v.maxPayload()
	v.memoryBudget()
	v.subscriptions()
	v.access()
	v.log()
	v.metrics()
	c.Broker, c.Cognito = c.Brokers[0], c.Brokers[0].Cognito
	c.HasCognito = ix.has("cognito") || ix.hasPath(ix.brokerKey(0)+".cognito")
	return v.err()
}

// at makes the i-th broker the one the broker methods check, and resolves its Limits.
func (v *checker) at(i int) {
	v.b, v.key = &v.c.Brokers[i], v.ix.brokerKey(i)
	v.b.Limits = providerLimits[v.b.Provider]
	v.lim, v.aws = v.b.Limits, v.b.Provider == ProviderAWSIoT
}

// has reports whether the file sets the key k (".keepalive") of the broker being checked.
func (v *checker) has(k string) bool { return v.ix.hasPath(v.key + k) }

// of names broker b in a message when there are several: ` (broker "plant")`.
func (v *checker) of(b *Broker) string {
	if len(v.c.Brokers) < 2 {
		return ""
	}
	return fmt.Sprintf(" (broker %q)", b.Name)
}

func (v *checker) bad(key string, format string, args ...any) {
	v.errs = append(v.errs, v.ix.errorf(key, nil, format, args...))
}

func (v *checker) warn(key, format string, args ...any) {
	msg := key + ": " + fmt.Sprintf(format, args...)
	if l := v.ix.lineOf(key); l > 0 {
		msg = fmt.Sprintf("%s:%d: %s", v.ix.file, l, msg)
	}
	v.c.Warnings = append(v.c.Warnings, msg)
}

// err joins the errors found, those with a line first, by line.
func (v *checker) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) { // errors without a line go last
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	out := make([]error, len(v.errs))
	for i, e := range v.errs {
		out[i] = e
	}
	return errors.Join(out...)
}

func (v *checker) provider() {
	if _, ok := providerLimits[v.b.Provider]; !ok {
		v.bad(v.key+".provider", "%q is not a provider: use %q or %q", v.b.Provider, ProviderMQTT, ProviderAWSIoT)
	}
}

// topClientID expands and checks the top-level client_id, the default of every broker's, when a
// broker uses it (the provider's limits are checked per broker, by clientID).
func (v *checker) topClientID() {
	c := v.c
	for i := range c.Brokers {
		if !v.ix.hasPath(v.ix.brokerKey(i) + ".client_id") {
			c.ClientID, v.topID = v.clientIDValue("client_id", c.ClientID)
			return
		}
	}
	if id, err := v.host.expand(c.ClientID); err == nil { // unused: every broker sets its own
		c.ClientID = id
	}
}

// clientID resolves the broker's client_id (default: the top-level one) and checks it.
func (v *checker) clientID() {
	b, key := v.b, v.key+".client_id"
	if v.ix.hasPath(key) {
		var ok bool
		if b.ClientID, ok = v.clientIDValue(key, b.ClientID); ok {
			v.providerClientID(key, b.ClientID, "")
		}
		return
	}
	b.ClientID = v.c.ClientID
	if v.topID {
		v.providerClientID("client_id", b.ClientID, v.of(b))
	}
}

// clientIDValue expands a client_id template and checks what MQTT allows [MQTT-3.1.3-5]: a UTF-8
// string of at most 65535 bytes. The limits of a provider apply to the id the broker sees.
func (v *checker) clientIDValue(key, tmpl string) (string, bool) {
	id, err := v.host.expand(tmpl)
	switch {
	case err != nil:
		v.bad(key, "%v", err)
	case id == "" && key == "client_id":
		v.bad(key, "empty: set client_id (the default, the host name, could not be read)")
	case id == "":
		v.bad(key, "empty: set an id, or remove the key to use the top-level client_id")
	case !utf8.ValidString(id) || strings.ContainsRune(id, 0):
		v.bad(key, "must be valid UTF-8 without NUL characters")
	case len(id) > mqttMaxString:
		v.bad(key, "longer than %d bytes", mqttMaxString)
	default:
		return id, true
	}
	return id, false
}

// providerClientID checks a client_id against the broker's provider; of names the broker.
func (v *checker) providerClientID(key, id, of string) {
	switch lim := v.lim; {
	case lim.MaxClientID > 0 && len(id) > lim.MaxClientID:
		v.bad(key, "%d bytes; %s allows at most %d%s", len(id), lim.Name, lim.MaxClientID, of)
	case lim.NoDollarID && strings.HasPrefix(id, "$"):
		v.bad(key, "must not start with '$' for %s (reserved)%s", lim.Name, of)
	}
}

// identity checks state_dir and socket.
func (v *checker) identity() {
	c := v.c
	if c.StateDir == "" {
		v.bad("state_dir", "empty: set a directory for the queue database")
	}
	switch {
	case c.Socket == "":
		v.bad("socket", "empty: set the path of the local API socket")
	case len(c.Socket) > MaxSocketPath:
		v.bad("socket", "path is %d bytes; Linux binds Unix sockets of at most %d bytes: choose a shorter path", len(c.Socket), MaxSocketPath)
	case strings.ContainsRune(c.Socket, 0):
		v.bad("socket", "path contains a NUL character")
	}
}

// brokerURL checks broker.url and, for AWS IoT, takes broker.region from its host when unset.
func (v *checker) brokerURL() {
	b, key := v.b, v.key+".url"
	if b.URL == "" {
		v.bad(key, `missing: set the broker's WebSocket URL, e.g. "wss://broker.example.com/mqtt"`)
		return
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		v.bad(key, "not a URL: %v", errors.Unwrap(err))
		return
	}
	switch {
	case u.Scheme != "ws" && u.Scheme != "wss":
		v.bad(key, "scheme %q: use ws:// or wss:// (MQTT over WebSocket)", u.Scheme)
	case v.aws && u.Scheme != "wss":
		v.bad(key, "AWS IoT needs wss://, not %s://", u.Scheme)
	case u.Hostname() == "":
		v.bad(key, "no host in %q", b.URL)
	case u.User != nil:
		v.bad(key, "must not hold credentials: use broker.username and broker.password_file")
	case !validPort(u.Port()):
		v.bad(key, "port %q is not a TCP port: use 1..65535, or leave it out for the scheme's default", u.Port())
	case v.aws && u.RawQuery != "":
		v.bad(key, "must not have a query string for AWS IoT: the agent signs the URL itself")
	}
	if v.aws && b.Region == "" && u.Hostname() != "" {
		if r, ok := awsregion.FromHost(u.Hostname()); ok {
			b.Region = r
		} else {
			v.bad(v.key+".region", "missing, and the host %q is not of the form <id>.iot.<region>.amazonaws.com: set region", u.Hostname())
		}
	}
}

// brokerAWS checks the keys that only one of the providers uses.
func (v *checker) brokerAWS() {
	b := v.b
	if b.Region != "" && !v.aws {
		v.warn(v.key+".region", "ignored: only used with provider %q", ProviderAWSIoT)
	} else if b.Region != "" && !awsregion.Valid(b.Region) {
		v.bad(v.key+".region", "%q is not an AWS region name (like \"eu-west-1\")", b.Region)
	}
	if v.aws && b.Username != "" {
		v.bad(v.key+".username", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}
	if v.aws && b.PasswordFile != "" {
		v.bad(v.key+".password_file", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}
}

// brokerSession checks keepalive, the in-flight window, the send rates and the reconnect backoff,
// within MQTT's limits and the provider's.
func (v *checker) brokerSession() {
	b, lim := v.b, v.lim
	switch k := b.Keepalive.Duration; {
	case k < time.Second || k > mqttMaxKeepalive:
		v.bad(v.key+".keepalive", "%v is outside 1s..65535s", k)
	case k%time.Second != 0:
		v.bad(v.key+".keepalive", "%v: MQTT counts keepalive in whole seconds", k)
	case lim.MinKeepalive > 0 && k < lim.MinKeepalive:
		b.Keepalive.Duration = lim.MinKeepalive
		v.warn(v.key+".keepalive", "%v is below the %s minimum; using %v", k, lim.Name, lim.MinKeepalive)
	case lim.MaxKeepalive > 0 && k > lim.MaxKeepalive:
		b.Keepalive.Duration = lim.MaxKeepalive
		v.warn(v.key+".keepalive", "%v is above the %s maximum; using %v", k, lim.Name, lim.MaxKeepalive)
	}
	switch {
	case b.MaxInflight < 1 || b.MaxInflight > mqttMaxInflight:
		v.bad(v.key+".max_inflight", "%d is outside 1..65535", b.MaxInflight)
	case lim.MaxInflight > 0 && b.MaxInflight > lim.MaxInflight:
		v.warn(v.key+".max_inflight", "%d is above the %s limit of %d unacknowledged QoS 1 messages; using %d", b.MaxInflight, lim.Name, lim.MaxInflight, lim.MaxInflight)
		b.MaxInflight = lim.MaxInflight
	}
	b.MaxInflight3 = DefaultMaxInflight3 // 3.x has no Receive Maximum to lower a large default
	if v.has(".max_inflight") {
		b.MaxInflight3 = b.MaxInflight
	}
	v.brokerProtocol()
	providerLimit(v, v.key+".max_publish_rate", &b.MaxPublishRate, lim.PublishRate)
	providerLimit(v, v.key+".max_byte_rate", &b.MaxByteRate, lim.ByteRate)
	providerLimit(v, v.key+".max_subscriptions", &b.MaxSubscriptions, lim.MaxSubscriptions)
	if b.ReconnectMin.Duration < lim.MinReconnect {
		v.warn(v.key+".reconnect_min", "%v: %s allows one CONNECT per client id per %v; quicker retries may be throttled (the default is 1s)",
			b.ReconnectMin.Duration, lim.Name, lim.MinReconnect)
	}
	switch rmin, rmax := b.ReconnectMin.Duration, b.ReconnectMax.Duration; {
	case rmin < 10*time.Millisecond || rmin > time.Hour:
		v.bad(v.key+".reconnect_min", "%v is outside 10ms..1h", rmin)
	case rmax < rmin || rmax > 24*time.Hour:
		v.bad(v.key+".reconnect_max", "%v: must be at least reconnect_min (%v) and at most 24h", rmax, rmin)
	}
}

// brokerProtocol checks broker.protocol (default: the provider's) and broker.session_expiry.
func (v *checker) brokerProtocol() {
	b, lim := v.b, v.lim
	if lim.DefaultProtocol == "" {
		return // not a provider (reported)
	}
	if b.Protocol == "" && !v.has(".protocol") {
		b.Protocol = lim.DefaultProtocol
	}
	allowed := lim.Protocols
	if allowed == nil {
		allowed = Protocols
	}
	if !slices.Contains(allowed, b.Protocol) {
		v.bad(v.key+".protocol", "%q is not a protocol %s speaks: use %s", b.Protocol, cmp.Or(lim.Name, "the broker"),
			`"`+strings.Join(allowed, `", "`)+`"`)
	}
	switch e := b.SessionExpiry.Duration; {
	case e < 0 || e > math.MaxUint32*time.Second:
		v.bad(v.key+".session_expiry", "%v is outside 0..%v (0 = a clean session on every connection)", e, math.MaxUint32*time.Second)
	case e%time.Second != 0:
		v.bad(v.key+".session_expiry", "%v: MQTT counts the session expiry in whole seconds", e)
	}
}

// providerLimit checks a limit key where 0 means no limit: a negative value is refused, and a key
// the file leaves out takes the provider's default def (0 too for provider "mqtt").
func providerLimit[T ~int | ~int64 | ~float64](v *checker, key string, val *T, def T) {
	switch {
	case *val < 0:
		v.bad(key, "%v is negative: use 0 for no limit", *val)
	case *val == 0 && !v.ix.hasPath(key):
		*val = def
	}
}

// brokerBounds checks the inbound bounds that are set in the file (memoryBudget fills in the others).
func (v *checker) brokerBounds() {
	b := v.b
	switch mp := b.MaxPacketSize; {
	case mp == 0 && !v.has(".max_packet_size"):
		// filled in by memoryBudget, once api.max_payload is known
	case mp < 256 || mp > mqttMaxPacketSize:
		v.bad(v.key+".max_packet_size", "%v is outside 256 bytes..%v (the MQTT limit)", mp, Size(mqttMaxPacketSize))
	}
	if v.has(".incoming_buffer") {
		v.warn(v.key+".incoming_buffer", "has no effect any more: broker messages are buffered once, per local subscriber "+
			"(api.subscriber_buffer, api.subscriber_budget); remove the key")
	}
	if b.PoisonAfter < 0 || b.PoisonAfter > 100 {
		v.bad(v.key+".poison_after", "%d is outside 0..100 (0 turns the rule off)", b.PoisonAfter)
	}
}

// cognito checks the broker's Cognito settings (aws-iot only): [broker.cognito], or with one broker
// the top-level [cognito] (never both).
func (v *checker) cognito() {
	b, ck := v.b, v.key+".cognito"
	own, top := v.has(".cognito"), v.ix.has("cognito")
	switch {
	case top && len(v.c.Brokers) > 1:
		if !own {
			return // topCognito reports it
		}
	case top && own:
		v.bad(ck, "Cognito is also set by the [cognito] table: keep one of the two")
		return
	case top:
		b.Cognito, ck = v.c.Cognito, "cognito"
	case !own:
		return
	}
	if !v.aws {
		// SPEC.md's example file carries a [cognito] table with provider "mqtt": accept it, say it is unused.
		v.warn(ck, "ignored: only used with provider %q (%s.provider is %q)", ProviderAWSIoT, v.key, b.Provider)
		return
	}
	cg, table := b.Cognito, "[cognito]"
	if ck != "cognito" {
		table = "[broker.cognito]"
	}
	switch {
	case cg.IdentityPoolID == "":
		v.bad(ck+".identity_pool_id", `missing: set it ("<region>:<uuid>") or remove the %s table`, table)
	case !validPoolID(cg.IdentityPoolID):
		v.bad(ck+".identity_pool_id", "%q is not an identity pool id (\"<region>:<uuid>\")", cg.IdentityPoolID)
	}
	if e := cg.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad(ck+".endpoint", "%q is not an http(s) URL", e)
		}
	}
	switch lp, lf := cg.LoginProvider, cg.LoginTokenFile; {
	case lp != "" && lf == "":
		v.bad(ck+".login_provider", "set without %s.login_token_file: an authenticated identity needs both (the file holds the provider's current ID token), or remove both", ck)
	case lp == "" && lf != "":
		v.bad(ck+".login_token_file", "set without %s.login_provider: name the identity pool's authentication provider (e.g. \"cognito-idp.<region>.amazonaws.com/<user pool id>\"), or remove both", ck)
	case lp != "" && !validLoginProvider(lp):
		v.bad(ck+".login_provider", "%q is not a provider name: at most 128 bytes of printable characters without spaces, e.g. \"accounts.google.com\"", lp)
	}
}

// topCognito refuses a top-level [cognito] table when there are several brokers: it belongs to the
// broker that uses it.
func (v *checker) topCognito() {
	if len(v.c.Brokers) > 1 && v.ix.has("cognito") {
		v.bad("cognito", "with several brokers, Cognito is set per broker: move this table below the [[broker]] that uses it, as [broker.cognito]")
	}
}

// queue checks the [queue] table and resolves each broker's queue bounds: [broker.queue], with
// [queue]'s values for the keys it leaves out. [queue] max_bytes also bounds all brokers together,
// so a broker's own max_bytes may not exceed it.
func (v *checker) queue() {
	top := v.c.Queue
	v.queueKeys("queue", &v.c.Queue, func(string) bool { return true })
	for i := range v.c.Brokers {
		q, key := &v.c.Brokers[i].Queue, v.ix.brokerKey(i)+".queue"
		set := func(k string) bool { return v.ix.hasPath(key + "." + k) }
		if !set("max_bytes") {
			q.MaxBytes = top.MaxBytes
		}
		if !set("overflow") {
			q.Overflow = top.Overflow
		}
		if !set("max_age") {
			q.MaxAge = top.MaxAge
		}
		if !set("max_dead_letters") {
			q.MaxDeadLetters = top.MaxDeadLetters
		}
		v.queueKeys(key, q, set)
		if set("max_bytes") && q.MaxBytes >= MinQueueBytes && q.MaxBytes > top.MaxBytes {
			v.bad(key+".max_bytes", "%v is above queue.max_bytes (%v), the bound of all brokers' queues together: lower it, or raise queue.max_bytes",
				q.MaxBytes, top.MaxBytes)
		}
	}
}

// queueKeys checks the keys of a queue table (key: "queue" or "broker[i].queue") that set reports
// as given.
func (v *checker) queueKeys(key string, q *Queue, set func(k string) bool) {
	if set("overflow") {
		switch q.Overflow {
		case OverflowDropOldest, OverflowReject:
		default:
			v.bad(key+".overflow", "%q: use %q or %q", q.Overflow, OverflowDropOldest, OverflowReject)
		}
	}
	if set("max_age") && q.MaxAge.Duration < 0 {
		v.bad(key+".max_age", "%v is negative: use 0 to keep messages until delivered", q.MaxAge.Duration)
	}
	if set("max_dead_letters") && q.MaxDeadLetters < 0 {
		v.bad(key+".max_dead_letters", "%d is negative", q.MaxDeadLetters)
	}
	if set("max_bytes") && q.MaxBytes < MinQueueBytes {
		v.bad(key+".max_bytes", "%v is below the minimum of %v", q.MaxBytes, MinQueueBytes)
	}
}

// maxPayload checks api.max_payload against the smallest limit of the brokers' providers (else
// MQTT's) and the smallest broker queue, or sets the smallest provider default (smaller for a small
// queue): a message must fit every broker it may go to.
func (v *checker) maxPayload() {
	c := v.c
	limit, limitName := Size(mqttMaxPacketSize), "the MQTT limit"
	def, queue, queueKey := Size(0), c.Queue.MaxBytes, "queue.max_bytes"
	for i := range c.Brokers {
		b := &c.Brokers[i]
		if lim := b.Limits; lim.MaxPayload > 0 && lim.MaxPayload < limit {
			limit, limitName = lim.MaxPayload, "the "+lim.Name+" limit"
		}
		if d := cmp.Or(b.Limits.DefaultPayload, DefaultMaxPayloadMQTT); def == 0 || d < def {
			def = d
		}
		if b.Queue.MaxBytes < queue {
			queue, queueKey = b.Queue.MaxBytes, v.ix.brokerKey(i)+".queue.max_bytes"
		}
	}
	switch p := c.API.MaxPayload; {
	case p == 0 && !v.ix.has("api.max_payload"):
		c.API.MaxPayload = def
		if queue >= MinQueueBytes && c.API.MaxPayload > queue/4 {
			c.API.MaxPayload = queue / 4 // a small queue gets a matching default
		}
	case p <= 0:
		v.bad("api.max_payload", "must be at least 1 byte")
	case p > limit:
		v.bad("api.max_payload", "%v is above %s of %v", p, limitName, limit)
	}
	if c.API.MaxPayload > queue && queue >= MinQueueBytes {
		v.bad("api.max_payload", "%v is larger than %s (%v): such a message could never be stored", c.API.MaxPayload, queueKey, queue)
	}
}

// memoryBudget checks the [api] bounds and the inbound buffers: keys left out follow the limits they
// must hold; keys set must hold them.
func (v *checker) memoryBudget() {
	a, has := &v.c.API, v.ix.has
	for i := range v.c.Brokers {
		if b := &v.c.Brokers[i]; b.MaxPacketSize == 0 && !v.ix.hasPath(v.ix.brokerKey(i)+".max_packet_size") {
			b.MaxPacketSize = min(max(a.MaxPayload, 0)+PacketOverhead, Size(mqttMaxPacketSize))
		}
	}
	switch {
	case a.MaxBatchBytes < 1:
		v.bad("api.max_batch_bytes", "must be at least 1 byte")
	case a.MaxBatchLines < 1:
		v.bad("api.max_batch_lines", "must be at least 1")
	case !has("api.body_budget"):
		a.BodyBudget = max(a.BodyBudget, a.MaxPayload, a.MaxBatchBytes)
	case a.BodyBudget < a.MaxPayload:
		v.bad("api.body_budget", "%v is smaller than api.max_payload (%v): such a publish could never be read", a.BodyBudget, a.MaxPayload)
	case a.BodyBudget < a.MaxBatchBytes:
		v.bad("api.body_budget", "%v is smaller than api.max_batch_bytes (%v): such a batch could never be read", a.BodyBudget, a.MaxBatchBytes)
	}
	switch {
	case a.SubscriberBuffer < 1:
		v.bad("api.subscriber_buffer", "must be at least 1 byte")
	case !has("api.subscriber_budget"):
		a.SubscriberBudget = max(a.SubscriberBudget, a.SubscriberBuffer)
	case a.SubscriberBudget < a.SubscriberBuffer:
		v.bad("api.subscriber_budget", "%v is smaller than api.subscriber_buffer (%v)", a.SubscriberBudget, a.SubscriberBuffer)
	}
	if a.MaxSubscribers < 1 || a.MaxSubscribers > 10000 {
		v.bad("api.max_subscribers", "%d is outside 1..10000", a.MaxSubscribers)
	}
	if a.MaxConnections < 1 || a.MaxConnections > 10000 {
		v.bad("api.max_connections", "%d is outside 1..10000", a.MaxConnections)
	}
	if d := a.ReadTimeout.Duration; d < 100*time.Millisecond || d > time.Hour {
		v.bad("api.read_timeout", "%v is outside 100ms..1h", d)
	}
	if d := a.IdleTimeout.Duration; d < time.Second || d > 24*time.Hour {
		v.bad("api.idle_timeout", "%v is outside 1s..24h", d)
	}
}

// subscriptions checks [[subscribe]]: each filter's syntax and, against the limits of every broker
// it is made with (all, or the one it names), its length and the providers' counts; QoS; broker.
func (v *checker) subscriptions() {
	c := v.c
	for i := range c.Brokers {
		b, n := &c.Brokers[i], 0
		for _, s := range c.Subscribe {
			if s.Broker == "" || s.Broker == b.Name {
				n++
			}
		}
		if lim := b.Limits; lim.MaxSubscriptions > 0 && n > lim.MaxSubscriptions {
			v.bad("subscribe", "%d subscriptions; %s allows at most %d per connection%s", n, lim.Name, lim.MaxSubscriptions, v.of(b))
		}
	}
	for i, s := range c.Subscribe {
		key := fmt.Sprintf("subscribe[%d]", i)
		if s.Topic == "" {
			v.bad(key+".topic", "missing: every [[subscribe]] needs a topic filter")
		}
		for j := range c.Brokers {
			b := &c.Brokers[j]
			if s.Topic == "" || s.Broker != "" && s.Broker != b.Name {
				continue
			}
			if _, err := b.Limits.Topic.ParseFilter(s.Topic); err != nil {
				v.bad(key+".topic", "%q: %v%s", s.Topic, err, v.of(b))
				break
			}
		}
		if s.Broker != "" && c.BrokerNamed(s.Broker) == nil {
			v.bad(key+".broker", "%q is not the name of a broker: use one of %s, or remove the key for every broker", s.Broker, v.nameList())
		}
		if s.QoS != 0 && s.QoS != 1 {
			v.bad(key+".qos", "%d: use 0 or 1", s.QoS)
		}
	}
}

// access checks [[access]]: one caller per rule, valid filters.
func (v *checker) access() {
	for i, a := range v.c.Access {
		key := fmt.Sprintf("access[%d]", i)
		n := 0
		for _, set := range []bool{a.User != "", a.UID != nil, a.GID != nil, a.Group != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.bad(key, "name exactly one of user, uid, gid or group (found %d)", n)
		}
		if a.UID != nil && *a.UID < 0 {
			v.bad(key+".uid", "%d is negative", *a.UID)
		}
		if a.GID != nil && *a.GID < 0 {
			v.bad(key+".gid", "%d is negative", *a.GID)
		}
		v.filters(key+".publish", a.Publish)
		v.filters(key+".subscribe", a.Subscribe)
		if len(a.Publish) == 0 && len(a.Subscribe) == 0 && n == 1 {
			v.warn(key, "grants neither publish nor subscribe")
		}
	}
}

// filters checks a list of topic filters against MQTT's rules (package topic).
func (v *checker) filters(key string, fs []string) {
	for j, f := range fs {
		if err := topic.ValidateFilter(f); err != nil {
			v.bad(fmt.Sprintf("%s[%d]", key, j), "%q: %v", f, err)
		}
	}
}

func (v *checker) log() {
	l := v.c.Log
	if !slices.Contains(knownLevels, l.Level) {
		v.bad("log.level", "%q: use one of %s", l.Level, strings.Join(knownLevels, ", "))
	}
	if !slices.Contains(knownFormats, l.Format) {
		v.bad("log.format", "%q: use %s", l.Format, strings.Join(knownFormats, " or "))
	}
}

// metrics checks metrics.listen: empty (off) or host:port with a numeric port.
func (v *checker) metrics() {
	addr := v.c.Metrics.Listen
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad("metrics.listen", "%q: want host:port, e.g. \"127.0.0.1:9464\" (\":9464\" for every address)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad("metrics.listen", "%q: the port must be a number 0..65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		v.bad("metrics.listen", "%q: %q is not a host name or IP address", addr, host)
	}
}

// validPort accepts an empty port (the scheme's default) or 1..65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// validLoginProvider accepts what Cognito takes as a Logins key: 1 to 128
// bytes, printable, no white space.
func validLoginProvider(p string) bool {
	if len(p) == 0 || len(p) > 128 || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// validPoolID reports whether id is a Cognito identity pool id ("<region>:<uuid>").
func validPoolID(id string) bool {
	_, ok := awsregion.FromID(id)
	return ok
}
